package store

import (
	"context"
	"fmt"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// SetSyncToken stores the SHA-256 of cluster id's new sync token, replacing
// the old one. Returns portal.ErrNotFound if there is no such cluster.
func (s *Store) SetSyncToken(ctx context.Context, id int64, hash []byte) error {
	tag, err := s.db.Exec(ctx, `UPDATE clusters SET sync_token_hash = $2, sync_token_created_at = now() WHERE id = $1`, id, hash)
	if err != nil {
		return mapErr("set sync token", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: set sync token: cluster %d: %w", id, portal.ErrNotFound)
	}
	return nil
}

// NextExpiry is when the next of cluster id's active credentials expires
// after now, or nil when none will: a waiting agent must hear of it then.
func (s *Store) NextExpiry(ctx context.Context, clusterID int64, now time.Time) (*time.Time, error) {
	var t *time.Time
	err := s.db.QueryRow(ctx, `
		SELECT min(expires_at) FROM credentials
		WHERE cluster_id = $1 AND revoked_at IS NULL AND expires_at > $2`, clusterID, now).Scan(&t)
	return t, mapErr("next expiry", err)
}

// Reminder is an expiry reminder that has come due.
type Reminder struct {
	CredentialID int64
	ClusterID    int64
	UserID       int64
	DaysBefore   int
	ExpiresAt    time.Time
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
		SELECT due.credential_id, c.cluster_id, c.user_id, due.days_before, c.expires_at
		FROM due JOIN credentials c ON c.id = due.credential_id
		ORDER BY due.credential_id, due.days_before`, daysBefore, now)
	if err != nil {
		return nil, mapErr("record due reminders", err)
	}
	defer rows.Close()
	var out []Reminder
	for rows.Next() {
		var r Reminder
		if err := rows.Scan(&r.CredentialID, &r.ClusterID, &r.UserID, &r.DaysBefore, &r.ExpiresAt); err != nil {
			return nil, mapErr("record due reminders", err)
		}
		out = append(out, r)
	}
	return out, mapErr("record due reminders", rows.Err())
}

// TryAdvisoryLock takes the transaction-level advisory lock key if no
// one holds it, for work only one replica should do at a time. Call inside
// InTx: the lock ends with the transaction. Reports whether it was taken.
func (s *Store) TryAdvisoryLock(ctx context.Context, key int64) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, key).Scan(&ok)
	return ok, mapErr("advisory lock", err)
}

// CompromisedSince counts the credentials reported compromised since t.
func (s *Store) CompromisedSince(ctx context.Context, t time.Time) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM credentials WHERE compromised AND revoked_at >= $1`, t).Scan(&n)
	return n, mapErr("compromised since", err)
}
