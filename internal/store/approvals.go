package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// AddApproval records one member of staff's approval of a request, fills in
// its time, and returns all the request's approvals with it, oldest first:
// the approval and the count that decides whether it is the last one needed
// cost one round trip. Returns portal.ErrConflict if they approved it
// already.
func (s *Store) AddApproval(ctx context.Context, ap *portal.Approval) ([]*portal.Approval, error) {
	var expiresOn *time.Time
	if !ap.ExpiresOn.IsZero() {
		expiresOn = &ap.ExpiresOn
	}
	// The statement's snapshot holds the approvals given before it, not the
	// one it inserts: that one comes from RETURNING.
	as, err := collect(func(row pgx.Row) (*portal.Approval, error) {
		var a portal.Approval
		var expiresOn *time.Time
		err := row.Scan(&a.RequestID, &a.ApproverID, &a.Note, &expiresOn, &a.ApprovedAt)
		if expiresOn != nil {
			a.ExpiresOn = *expiresOn
		}
		return &a, err
	})(s.db.Query(ctx, `
		WITH added AS (
			INSERT INTO request_approvals (request_id, approver_id, note, expires_on)
			VALUES ($1, $2, $3, $4)
			RETURNING request_id, approver_id, note, expires_on, approved_at
		)
		SELECT request_id, approver_id, note, expires_on, approved_at FROM added
		UNION ALL
		SELECT request_id, approver_id, note, expires_on, approved_at FROM request_approvals WHERE request_id = $1
		ORDER BY approved_at, approver_id`,
		ap.RequestID, ap.ApproverID, ap.Note, expiresOn))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("approval of request %d by user %d", ap.RequestID, ap.ApproverID), err)
	}
	for _, a := range as {
		if a.ApproverID == ap.ApproverID {
			ap.ApprovedAt = a.ApprovedAt
		}
	}
	return as, nil
}
