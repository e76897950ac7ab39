package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// AddApproval records one member of staff's approval of a request and fills
// in its time. Returns portal.ErrConflict if they approved it already.
func (s *Store) AddApproval(ctx context.Context, ap *portal.Approval) error {
	var expiresOn *time.Time
	if !ap.ExpiresOn.IsZero() {
		expiresOn = &ap.ExpiresOn
	}
	err := s.db.QueryRow(ctx, `
		INSERT INTO request_approvals (request_id, approver_id, note, expires_on)
		VALUES ($1, $2, $3, $4)
		RETURNING approved_at`,
		ap.RequestID, ap.ApproverID, ap.Note, expiresOn,
	).Scan(&ap.ApprovedAt)
	return mapErr(fmt.Sprintf("approval of request %d by user %d", ap.RequestID, ap.ApproverID), err)
}

// Approvals lists the approvals of request id, oldest first.
func (s *Store) Approvals(ctx context.Context, id int64) ([]*portal.Approval, error) {
	as, err := collect(func(row pgx.Row) (*portal.Approval, error) {
		var ap portal.Approval
		var expiresOn *time.Time
		err := row.Scan(&ap.RequestID, &ap.ApproverID, &ap.Note, &expiresOn, &ap.ApprovedAt)
		if expiresOn != nil {
			ap.ExpiresOn = *expiresOn
		}
		return &ap, err
	})(s.db.Query(ctx, `
		SELECT request_id, approver_id, note, expires_on, approved_at FROM request_approvals
		WHERE request_id = $1 ORDER BY approved_at, approver_id`, id))
	return as, mapErr(fmt.Sprintf("approvals of request %d", id), err)
}
