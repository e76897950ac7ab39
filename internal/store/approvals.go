package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// addApproval is the statement that records one member of staff's approval
// ap and reads all the request's approvals with it, oldest first: the
// approval and the count that decides whether it is the last one needed in
// one statement. Its snapshot holds the approvals given before it, not the
// one it inserts: that one comes from RETURNING.
func addApproval(ap *portal.Approval) (string, []any) {
	var expiresOn *time.Time
	if !ap.ExpiresOn.IsZero() {
		expiresOn = &ap.ExpiresOn
	}
	return `
		WITH added AS (
			INSERT INTO request_approvals (request_id, approver_id, note, expires_on)
			VALUES ($1, $2, $3, $4)
			RETURNING request_id, approver_id, note, expires_on, approved_at
		)
		SELECT request_id, approver_id, note, expires_on, approved_at FROM added
		UNION ALL
		SELECT request_id, approver_id, note, expires_on, approved_at FROM request_approvals WHERE request_id = $1
		ORDER BY approved_at, approver_id`, []any{ap.RequestID, ap.ApproverID, ap.Note, expiresOn}
}

// approvalsAdded reads the answer of addApproval(ap), filling in ap's time.
func approvalsAdded(ap *portal.Approval) func(pgx.Rows, error) ([]*portal.Approval, error) {
	return func(rows pgx.Rows, err error) ([]*portal.Approval, error) {
		as, err := collect(func(row pgx.Row) (*portal.Approval, error) {
			var a portal.Approval
			var expiresOn *time.Time
			err := row.Scan(&a.RequestID, &a.ApproverID, &a.Note, &expiresOn, &a.ApprovedAt)
			if expiresOn != nil {
				a.ExpiresOn = *expiresOn
			}
			return &a, err
		})(rows, err)
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
}

// Approving is what an approval reads and writes in its first round trip.
type Approving struct {
	Request *portal.Request
	Cluster *portal.Cluster
	// Approvals are the request's approvals with this one, oldest first, or
	// nil when Added is not: portal.ErrConflict when this approver approved
	// it already.
	Approvals []*portal.Approval
	Added     error
	// Decided says the request is now approved, decided by this approver
	// with this approval's note: it was the last approval its cluster
	// needs.
	Decided bool
	// CredentialID is drawn for the credential, should this approval be the
	// last one needed, for the writes that name the credential before it
	// exists (its events and messages); unused, it is a gap in the sequence.
	CredentialID int64
}

// LockForApproval locks the request as LockRequest does, reads its cluster,
// records the approval ap (filling in its time), decides the request as
// approved when that makes as many approvals as its cluster needs, and
// draws an ID for the credential, in one round trip with what the
// transaction held back. The approval is added before the caller can check that the request
// may be approved: a caller that refuses it rolls the transaction back.
// Returns portal.ErrNotFound when the request does not exist; a refused
// approval is in Added, so that the caller can tell a request no longer
// pending, which refuses any approval, from a second approval of the same
// person.
func (s *Store) LockForApproval(ctx context.Context, ap *portal.Approval) (*Approving, error) {
	o := &Approving{}
	var b pgx.Batch
	b.Queue(requestSelect+` WHERE requests.id = $1 FOR UPDATE OF requests`, ap.RequestID)
	b.Queue(`SELECT `+clusterColumns+` FROM clusters WHERE id = (SELECT cluster_id FROM requests WHERE id = $1)`, ap.RequestID)
	sql, args := addApproval(ap)
	b.Queue(sql, args...)
	// Counted after the lock, the approvals are all that were committed
	// before, and this one.
	b.Queue(`
		UPDATE requests SET status = 'approved', decided_by = $2, decided_at = now(), decision_note = $3
		WHERE id = $1 AND status = 'pending'
		  AND (SELECT count(*) FROM request_approvals WHERE request_id = $1)
		      >= (SELECT approvals_required FROM clusters WHERE clusters.id = requests.cluster_id)`,
		ap.RequestID, ap.ApproverID, ap.Note)
	b.Queue(`SELECT nextval(pg_get_serial_sequence('credentials', 'id'))`)
	br := s.db.SendBatch(ctx, &b)
	defer br.Close()
	r, err := scanRequest(br.QueryRow())
	if err != nil {
		return nil, mapErr(fmt.Sprintf("lock request %d", ap.RequestID), err)
	}
	c, err := scanCluster(br.QueryRow())
	if err != nil {
		return nil, mapErr(fmt.Sprintf("cluster of request %d", ap.RequestID), err)
	}
	o.Request, o.Cluster = r, c
	if o.Approvals, o.Added = approvalsAdded(ap)(br.Query()); o.Added != nil {
		return o, nil // the transaction is aborted: nothing more to read
	}
	tag, err := br.Exec()
	if err != nil {
		// The schema refuses the decision (the requester's own request):
		// the caller's checks say why.
		o.Added = mapErr(fmt.Sprintf("decide request %d", ap.RequestID), err)
		return o, nil
	}
	o.Decided = tag.RowsAffected() == 1
	if err := br.QueryRow().Scan(&o.CredentialID); err != nil {
		return nil, mapErr("reserve credential id", err)
	}
	return o, nil
}
