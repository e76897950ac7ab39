package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// requestSelect reads a request with its display fields. Every read of
// requests goes through it (or requestListSelect), so the joins live here
// only. The requests table keeps its own name so that LockRequest can lock
// it alone.
const requestSelect = requestSelectHead + `requests.public_key` + requestSelectTail

// requestListSelect is requestSelect for the pages of requests, which read
// an empty public key: no list shows the key (its fingerprint says which it
// is), issuing and renewing read one request by its ID, and an SSH RSA key
// is most of a row's bytes.
const requestListSelect = requestSelectHead + `''` + requestSelectTail

// The approvers come in approval order from request_approvals_order_idx,
// each email looked up by its own key (joined instead, the planner hashes
// the whole users table again for every request of a page), except the
// decider's, already at hand: most requests have one approval, the
// decision's own. The credential's ID is looked up by its own key too:
// joined, it is one more table for the planner to order, which doubled the
// time to plan a page of requests (1.0 ms against 0.45 ms on the load
// test's database) for the same execution.
const (
	requestSelectHead = `
	SELECT requests.id, requests.user_id, requests.cluster_id, `
	requestSelectTail = `, requests.key_type,
	       requests.key_fingerprint, requests.justification, requests.status, requests.decided_by,
	       requests.decided_at, requests.decision_note, requests.renews_credential_id, requests.created_at,
	       clusters.name, requester.email, requester.email_verified, requester.name, coalesce(decider.email, ''),
	       (SELECT credentials.id FROM credentials WHERE credentials.request_id = requests.id),
	       requests.decided_by_rule, clusters.approvals_required,
	       ARRAY(SELECT CASE WHEN request_approvals.approver_id = requests.decided_by THEN decider.email
	                         ELSE (SELECT approver.email FROM users approver WHERE approver.id = request_approvals.approver_id) END
	             FROM request_approvals WHERE request_approvals.request_id = requests.id ORDER BY request_approvals.approved_at)
	FROM requests
	JOIN clusters ON clusters.id = requests.cluster_id
	JOIN users requester ON requester.id = requests.user_id
	LEFT JOIN users decider ON decider.id = requests.decided_by`
)

func scanRequest(row pgx.Row) (*portal.Request, error) {
	var r portal.Request
	err := row.Scan(&r.ID, &r.UserID, &r.ClusterID, &r.PublicKey, &r.KeyType,
		&r.KeyFingerprint, &r.Justification, &r.Status, &r.DecidedBy,
		&r.DecidedAt, &r.DecisionNote, &r.RenewsCredentialID, &r.CreatedAt,
		&r.ClusterName, &r.RequesterEmail, &r.RequesterVerified, &r.RequesterName, &r.DeciderEmail, &r.CredentialID,
		&r.DecidedByRule, &r.ApprovalsRequired, &r.Approvers)
	r.Approvers = nilIfEmpty(r.Approvers)
	return &r, err
}

// CreateRequest stores a new pending request and fills in its ID, status and
// creation time. Returns portal.ErrConflict if the customer already has a
// pending request for the cluster, portal.ErrInvalid if the schema's rules
// refuse a field (an unknown user or cluster, a justification too short or
// too long, an empty or oversized key).
func (s *Store) CreateRequest(ctx context.Context, r *portal.Request) error {
	err := s.db.QueryRow(ctx, `
		INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, renews_credential_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING id, status, created_at`,
		r.UserID, r.ClusterID, r.PublicKey, r.KeyType, r.KeyFingerprint, r.Justification, r.RenewsCredentialID,
	).Scan(&r.ID, &r.Status, &r.CreatedAt)
	if err != nil {
		return mapErr(fmt.Sprintf("create request of user %d for cluster %d", r.UserID, r.ClusterID), err)
	}
	return nil
}

// RequestByID returns the request with id and its display fields. Returns
// portal.ErrNotFound if there is none.
func (s *Store) RequestByID(ctx context.Context, id int64) (*portal.Request, error) {
	r, err := scanRequest(s.db.QueryRow(ctx, requestSelect+` WHERE requests.id = $1`, id))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("request %d", id), err)
	}
	return r, nil
}

// RequestByIDAfterNext is RequestByID sent, in a transaction, behind the
// transaction's next statement or its COMMIT, in its round trip, so that it
// sees what was written: it returns what gives the request once that
// statement has gone. Outside a transaction it reads at once.
func (s *Store) RequestByIDAfterNext(ctx context.Context, id int64) func() (*portal.Request, error) {
	t, ok := s.db.(*txdb)
	if !ok {
		r, err := s.RequestByID(ctx, id)
		return func() (*portal.Request, error) { return r, err }
	}
	var r *portal.Request
	err := fmt.Errorf("store: request %d: read before the statement it goes behind", id)
	t.holdBehind(requestSelect+` WHERE requests.id = $1`, id).QueryRow(func(row pgx.Row) error {
		r, err = scanRequest(row)
		err = mapErr(fmt.Sprintf("request %d", id), err)
		return err
	})
	return func() (*portal.Request, error) { return r, err }
}

// LockRequest is RequestByID that also locks the request's row until the
// transaction ends, so that two decisions on one request take turns: call it
// inside InTx. When it had to wait for another transaction, the request's own
// fields are the ones that transaction committed, but the display fields
// (DeciderEmail, CredentialID…) are as they were when LockRequest began; read
// the request again for those. Returns portal.ErrNotFound if there is none.
func (s *Store) LockRequest(ctx context.Context, id int64) (*portal.Request, error) {
	r, err := scanRequest(s.db.QueryRow(ctx, requestSelect+` WHERE requests.id = $1 FOR UPDATE OF requests`, id))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("lock request %d", id), err)
	}
	return r, nil
}

// LockRequestAndCluster is LockRequest and ClusterByID of the request's
// cluster, in one round trip.
func (s *Store) LockRequestAndCluster(ctx context.Context, id int64) (*portal.Request, *portal.Cluster, error) {
	var (
		r *portal.Request
		c *portal.Cluster
		b pgx.Batch
	)
	b.Queue(requestSelect+` WHERE requests.id = $1 FOR UPDATE OF requests`, id).QueryRow(func(row pgx.Row) (err error) {
		r, err = scanRequest(row)
		return mapErr(fmt.Sprintf("lock request %d", id), err)
	})
	b.Queue(`SELECT `+clusterColumns+` FROM clusters WHERE id = (SELECT cluster_id FROM requests WHERE id = $1)`, id).QueryRow(
		func(row pgx.Row) (err error) {
			c, err = scanCluster(row)
			return mapErr(fmt.Sprintf("cluster of request %d", id), err)
		})
	if err := s.db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, nil, err
	}
	return r, c, nil
}

// PendingRequestFor returns the customer's pending request for the cluster.
// Returns portal.ErrNotFound if there is none.
func (s *Store) PendingRequestFor(ctx context.Context, userID, clusterID int64) (*portal.Request, error) {
	r, err := scanRequest(s.db.QueryRow(ctx,
		requestSelect+` WHERE requests.user_id = $1 AND requests.cluster_id = $2 AND requests.status = 'pending'`,
		userID, clusterID))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("pending request of user %d for cluster %d", userID, clusterID), err)
	}
	return r, nil
}

// userRequestsOrder is the order of a customer's requests: newest first, on
// requests_user_idx.
var userRequestsOrder = keyset{at: "requests.created_at", id: "requests.id", desc: true}

func userRequestsQuery(userID int64, status portal.RequestStatus, after *portal.PageCursor, limit int) (string, []any) {
	conds, args := []string{"requests.user_id = $1"}, []any{userID}
	if status != "" {
		conds, args = append(conds, "requests.status = $2"), append(args, status)
	}
	return userRequestsOrder.page(requestListSelect, conds, args, after, limit)
}

// UserRequestsPage returns up to limit of the customer's requests with
// status ("" for any), newest first, after the cursor (from the newest when
// nil), without their public keys (PublicKey is "").
func (s *Store) UserRequestsPage(ctx context.Context, userID int64, status portal.RequestStatus, after *portal.PageCursor, limit int) ([]*portal.Request, error) {
	sql, args := userRequestsQuery(userID, status, after, pageLimit(limit))
	rs, err := collect(scanRequest)(s.db.Query(ctx, sql, args...))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("requests of user %d", userID), err)
	}
	return rs, nil
}

// requestSummarySelect reads what an overview of a person's own requests
// shows of each: which cluster, its status, its key's fingerprint, when it
// was sent. Not the decision, the credential or the approvers, each a
// lookup per row, which the request's own page reads.
const requestSummarySelect = `
	SELECT requests.id, requests.user_id, requests.cluster_id, requests.key_type, requests.key_fingerprint,
	       requests.status, requests.created_at, clusters.name
	FROM requests
	JOIN clusters ON clusters.id = requests.cluster_id`

func userRequestSummariesQuery(userID int64, after *portal.PageCursor, limit int) (string, []any) {
	return userRequestsOrder.page(requestSummarySelect, []string{"requests.user_id = $1"}, []any{userID}, after, limit)
}

// UserRequestSummariesPage is UserRequestsPage for an overview: the
// requests with only their ID, user, cluster (and its name), key type and
// fingerprint, status and creation time filled in.
func (s *Store) UserRequestSummariesPage(ctx context.Context, userID int64, after *portal.PageCursor, limit int) ([]*portal.Request, error) {
	sql, args := userRequestSummariesQuery(userID, after, pageLimit(limit))
	rs, err := collect(func(row pgx.Row) (*portal.Request, error) {
		var r portal.Request
		err := row.Scan(&r.ID, &r.UserID, &r.ClusterID, &r.KeyType, &r.KeyFingerprint, &r.Status, &r.CreatedAt, &r.ClusterName)
		return &r, err
	})(s.db.Query(ctx, sql, args...))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("requests of user %d", userID), err)
	}
	return rs, nil
}

// statusRequestsOrder is the order of everyone's requests with one status:
// pending ones oldest first, as the staff queue serves them (on
// requests_queue_idx), the decided ones newest first (requests_status_idx).
func statusRequestsOrder(status portal.RequestStatus) keyset {
	return keyset{at: "requests.created_at", id: "requests.id", desc: status != portal.StatusPending}
}

func statusRequestsQuery(status portal.RequestStatus, after *portal.PageCursor, limit int) (string, []any) {
	return statusRequestsOrder(status).page(requestListSelect, []string{"requests.status = $1"}, []any{status}, after, limit)
}

// StatusRequestsPage returns up to limit of everyone's requests with
// status, after the cursor (from the start when nil): pending ones oldest
// first, the others newest first; without their public keys (PublicKey is
// "").
func (s *Store) StatusRequestsPage(ctx context.Context, status portal.RequestStatus, after *portal.PageCursor, limit int) ([]*portal.Request, error) {
	sql, args := statusRequestsQuery(status, after, pageLimit(limit))
	rs, err := collect(scanRequest)(s.db.Query(ctx, sql, args...))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("%s requests", status), err)
	}
	return rs, nil
}

// ApproveByRule moves pending request id to approved by the cluster's
// policy, naming the rule that matched, with no decider. Returns what
// DecideRequest returns, and is held back in a transaction as it is.
func (s *Store) ApproveByRule(ctx context.Context, id int64, rule string) error {
	op := fmt.Sprintf("approve request %d by rule", id)
	return s.holdWrite(ctx, func(row pgx.Row) error { return changedOnce(op, "no longer pending", row) }, `
		WITH decided AS (
			UPDATE requests SET status = 'approved', decided_by_rule = $2, decided_at = now()
			WHERE id = $1 AND status = 'pending'
			RETURNING id
		)
		SELECT EXISTS (SELECT FROM decided), EXISTS (SELECT FROM requests WHERE id = $1)`,
		id, rule)
}

// DecideRequest moves a pending request to status (approved, denied, or
// cancelled by its requester), decided by decidedBy now, with note. Returns
// portal.ErrNotFound if there is no such request, portal.ErrConflict if it is
// no longer pending, portal.ErrInvalid if the schema's rules refuse the
// decision (deciding on one's own request, a denial without a note, a status
// that is not a decision). In a transaction the statement is held back to go
// with the transaction's next one, and these errors come with that one's, or
// the commit's.
func (s *Store) DecideRequest(ctx context.Context, id int64, status portal.RequestStatus, decidedBy int64, note string) error {
	op := fmt.Sprintf("decide request %d", id)
	return s.holdWrite(ctx, func(row pgx.Row) error { return changedOnce(op, "no longer pending", row) }, `
		WITH decided AS (
			UPDATE requests
			SET status = $2, decided_by = $3, decided_at = now(), decision_note = $4
			WHERE id = $1 AND status = 'pending'
			RETURNING id
		)
		SELECT EXISTS (SELECT FROM decided), EXISTS (SELECT FROM requests WHERE id = $1)`,
		id, status, decidedBy, note)
}

// ExpireRequests moves every request that has been pending longer than its
// cluster's request lifetime at now (def for a cluster that sets none) to
// expired, decided by no one, and returns them, oldest first, with their
// new status (their DecidedAt is not read back). A new request for the same
// cluster is then allowed.
func (s *Store) ExpireRequests(ctx context.Context, now time.Time, def time.Duration) ([]*portal.Request, error) {
	rs, err := collect(scanRequest)(s.db.Query(ctx, `
		WITH expired AS (
			UPDATE requests SET status = 'expired', decided_at = now()
			FROM clusters
			WHERE clusters.id = requests.cluster_id AND requests.status = 'pending'
			  AND requests.created_at < $1::timestamptz - CASE WHEN clusters.request_ttl_days > 0
			      THEN make_interval(days => clusters.request_ttl_days) ELSE make_interval(secs => $2) END
			RETURNING requests.id
		)`+strings.Replace(requestSelect, "FROM requests", "FROM expired JOIN requests USING (id)", 1)+`
		ORDER BY requests.created_at, requests.id`, now, def.Seconds()))
	// The statement's own read sees the rows as they were before its update.
	for _, r := range rs {
		r.Status = portal.StatusExpired
	}
	return rs, mapErr("expire requests", err)
}
