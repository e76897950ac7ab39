package store

import (
	"context"
	"time"
)

// Reminder is an expiry reminder that has come due.
type Reminder struct {
	CredentialID int64
	ClusterID    int64
	UserID       int64
	DaysBefore   int
	ExpiresAt    time.Time
	// Read with it, for the owner's message.
	ClusterName   string
	Username      string
	OwnerEmail    string
	OwnerVerified bool
}

// RecordDueReminders records, once each, the reminders that are due at now:
// for every active credential and every n in daysBefore, a reminder once
// the credential expires within n days. It returns the ones recorded now.
func (s *Store) RecordDueReminders(ctx context.Context, daysBefore []int, now time.Time) ([]Reminder, error) {
	rows, err := s.db.Query(ctx, `
		WITH due AS (
			INSERT INTO credential_reminders (credential_id, days_before, due_at)
			SELECT c.id, d, c.expires_at - make_interval(days => d)
			FROM credentials c CROSS JOIN unnest($1::int[]) AS d
			WHERE c.revoked_at IS NULL AND c.expires_at > $2 AND c.expires_at - make_interval(days => d) <= $2
			ON CONFLICT DO NOTHING
			RETURNING credential_id, days_before
		)
		SELECT due.credential_id, c.cluster_id, c.user_id, due.days_before, c.expires_at,
		       cl.name, c.username, u.email, u.email_verified
		FROM due JOIN credentials c ON c.id = due.credential_id
		JOIN clusters cl ON cl.id = c.cluster_id
		JOIN users u ON u.id = c.user_id
		ORDER BY due.credential_id, due.days_before`, daysBefore, now)
	if err != nil {
		return nil, mapErr("record due reminders", err)
	}
	defer rows.Close()
	var out []Reminder
	for rows.Next() {
		var r Reminder
		if err := rows.Scan(&r.CredentialID, &r.ClusterID, &r.UserID, &r.DaysBefore, &r.ExpiresAt,
			&r.ClusterName, &r.Username, &r.OwnerEmail, &r.OwnerVerified); err != nil {
			return nil, mapErr("record due reminders", err)
		}
		out = append(out, r)
	}
	return out, mapErr("record due reminders", rows.Err())
}
