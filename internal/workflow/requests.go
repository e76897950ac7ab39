package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/message"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// RequestInput is what a customer submits to ask for a credential.
type RequestInput struct {
	Cluster       string // the cluster's name
	PublicKey     string
	Justification string
}

// CreateRequest records a customer's request for a credential. The key rules
// are issue.ParseRecipient's. Returns an Error of portal.KindInvalid naming
// the field to fix (a pasted private key is marked Secret), or of
// portal.KindConflict, linked to the pending request, when one for the
// cluster exists already.
func (s *Service) CreateRequest(ctx context.Context, a Actor, in RequestInput) (*portal.Request, error) {
	return s.createRequest(ctx, a, in, 0)
}

// createRequest records a request; renews, when not 0, is the ID of the
// credential it renews.
func (s *Service) createRequest(ctx context.Context, a Actor, in RequestInput, renews int64) (*portal.Request, error) {
	if a.User == nil {
		return nil, portal.ErrForbidden
	}
	// Every problem at once, joined, so a form can show each beside its
	// field; the key's first: a private key must be refused whatever else
	// is wrong, and an API caller sees the first.
	var problems []error
	rcpt, err := issue.ParseRecipient(in.PublicKey)
	if err != nil {
		problems = append(problems, err)
	}
	justification, err := portal.CleanText("justification", in.Justification, portal.MaxJustification)
	if err != nil {
		problems = append(problems, err)
	} else if n := utf8.RuneCountInString(justification); n < portal.MinJustification {
		problems = append(problems, portal.Invalid("justification", "Say in %d to %d characters what you will use the access for (you wrote %d).",
			portal.MinJustification, portal.MaxJustification, n))
	}
	cluster, err := s.store.ClusterByName(ctx, strings.TrimSpace(in.Cluster))
	switch {
	case errors.Is(err, portal.ErrNotFound):
		problems = append(problems, portal.Invalid("cluster", "Choose a cluster from the list."))
	case err != nil:
		return nil, err
	case !cluster.Enabled:
		problems = append(problems, portal.Invalid("cluster", "%s is not taking new requests at the moment. Contact 2i2c support if you need access.", cluster.Title()))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}

	r := &portal.Request{
		UserID: a.User.ID, ClusterID: cluster.ID, PublicKey: rcpt.Key, KeyType: rcpt.Type,
		KeyFingerprint: rcpt.Fingerprint, Justification: justification, ClusterName: cluster.Name,
		RequesterEmail: a.User.Email, RequesterVerified: a.User.EmailVerified,
	}
	details := map[string]any{"cluster": cluster.Name, "key_type": string(rcpt.Type), "key_fingerprint": rcpt.Fingerprint}
	if renews != 0 {
		r.RenewsCredentialID = &renews
		details["renews_credential_id"] = renews
	}
	facts := message.Facts{
		Event: portal.ActionRequestCreated, Link: s.notify.requestLink(0, true),
		Cluster: cluster.Name, Renews: renews, Customer: customerName(a.User.Name, a.User.Email),
		Justification: justification, KeyType: rcpt.Type.Label(),
	}
	// A request a rule of the cluster's policy approves is issued in the
	// transaction that makes it; its password's hash starts now.
	rule, matched, auto := cluster.Policy.AutoApproves(a.User)
	var secrets *issue.Secrets
	if auto {
		secrets = issue.NewSecrets(s.cost)
	}
	err = s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		if err := audit(a.event(portal.ActionRequestCreated, portal.SubjectRequest, r.ID, &cluster.ID, details)); err != nil {
			return err
		}
		facts.RequestID, facts.Link = r.ID, s.notify.requestLink(r.ID, true)
		if auto {
			return s.approveByRule(ctx, tx, audit, r, cluster, rcpt, rule, matched, facts, secrets)
		}
		return tell(ctx, tx)(s.notify.toStaff(facts))
	})
	if errors.Is(err, portal.ErrConflict) {
		if existing, ferr := s.store.PendingRequestFor(ctx, a.User.ID, cluster.ID); ferr == nil {
			return nil, duplicate(existing)
		}
	}
	if err != nil {
		return nil, err
	}
	return s.store.RequestByID(ctx, r.ID)
}

// duplicate refuses a second open request for the same cluster and points
// at the first.
func duplicate(existing *portal.Request) error {
	return &portal.Error{Kind: portal.KindConflict, Field: "cluster",
		Message: fmt.Sprintf("You already have a pending request (#%d) for %s. Wait for its decision, or cancel it to make a new one.",
			existing.ID, existing.ClusterName),
		Link: &portal.Link{Subject: portal.SubjectRequest, ID: existing.ID}}
}

// Request returns request id to its requester or to staff. Returns
// portal.ErrNotFound for anyone else, as for a request that does not exist.
func (s *Service) Request(ctx context.Context, a Actor, id int64) (*portal.Request, error) {
	return visible[*portal.Request](a, Actor.mayRead)(s.store.RequestByID(ctx, id))
}

// Requests is a page of requests: a customer's own (with status, or any
// when ""), newest first; or, for staff giving a status, everyone's with
// that status (pending ones oldest first). Returns portal.ErrForbidden for
// no one signed in and an Error of portal.KindInvalid for a limit out of
// range.
func (s *Service) Requests(ctx context.Context, a Actor, status portal.RequestStatus, q portal.PageQuery) (*portal.Page[*portal.Request], error) {
	if a.User == nil {
		return nil, portal.ErrForbidden
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	var (
		rs  []*portal.Request
		err error
	)
	if status != "" && a.isStaff() {
		rs, err = s.store.StatusRequestsPage(ctx, status, q.After, q.Limit+1)
	} else {
		rs, err = s.store.UserRequestsPage(ctx, a.User.ID, status, q.After, q.Limit+1)
	}
	if err != nil {
		return nil, err
	}
	return portal.NewPage(rs, q.Limit, createdKey), nil
}

// RequestSummaries is a page of the person's own requests, newest first,
// as an overview shows them: only their ID, cluster, key type and
// fingerprint, status and creation time are filled in
// (store.UserRequestSummariesPage). Returns portal.ErrForbidden when nobody
// is signed in and an Error of portal.KindInvalid for a limit out of range.
func (s *Service) RequestSummaries(ctx context.Context, a Actor, q portal.PageQuery) (*portal.Page[*portal.Request], error) {
	if a.User == nil {
		return nil, portal.ErrForbidden
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	rs, err := s.store.UserRequestSummariesPage(ctx, a.User.ID, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	return portal.NewPage(rs, q.Limit, createdKey), nil
}

func createdKey(r *portal.Request) portal.PageCursor {
	return portal.PageCursor{At: r.CreatedAt, ID: r.ID}
}

// Queue is a page of the staff queue: pending requests, oldest first.
// Returns portal.ErrForbidden for customers and an Error of
// portal.KindInvalid for a limit out of range.
func (s *Service) Queue(ctx context.Context, a Actor, q portal.PageQuery) (*portal.Page[*portal.Request], error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	rs, err := s.store.StatusRequestsPage(ctx, portal.StatusPending, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	return portal.NewPage(rs, q.Limit, createdKey), nil
}

// CancelRequest withdraws a pending request. Only its requester may; others
// get portal.ErrNotFound (staff: ErrForbidden, they deny instead). Returns a
// Error of portal.KindConflict when the request is no longer pending.
func (s *Service) CancelRequest(ctx context.Context, a Actor, id int64) (*portal.Request, error) {
	var cancelled *portal.Request
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		r, err := tx.LockRequest(ctx, id)
		if err != nil {
			return err
		}
		if err := mayCancel(a, r); err != nil {
			return err
		}
		if r.Status != portal.StatusPending {
			return portal.Errorf(portal.KindConflict, "This request is already %s; only a pending request can be cancelled.", r.Status)
		}
		if err := tx.DecideRequest(ctx, id, portal.StatusCancelled, a.User.ID, ""); err != nil {
			return err
		}
		if err := audit(a.event(portal.ActionRequestCancelled, portal.SubjectRequest, id, &r.ClusterID, nil)); err != nil {
			return err
		}
		cancelled, err = tx.RequestByID(ctx, id) // with the writes held back before it
		return err
	})
	if err != nil {
		return nil, err
	}
	return cancelled, nil
}

// mayCancel refuses anyone but the requester the cancelling of r: staff
// with the reason (they deny instead), anyone else as if r did not exist.
func mayCancel(a Actor, r *portal.Request) error {
	switch {
	case a.is(r.UserID):
		return nil
	case a.isStaff():
		return portal.Errorf(portal.KindForbidden, "Only the requester can cancel a request; deny it instead.")
	}
	return fmt.Errorf("request %d: %w", r.ID, portal.ErrNotFound)
}

// RequestToCancel returns request id to its requester, for the page that
// confirms its cancellation: it refuses whom CancelRequest refuses, the
// same way (staff with portal.ErrForbidden, anyone else with
// portal.ErrNotFound). The request may no longer be pending.
func (s *Service) RequestToCancel(ctx context.Context, a Actor, id int64) (*portal.Request, error) {
	r, err := s.store.RequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := mayCancel(a, r); err != nil {
		return nil, err
	}
	return r, nil
}

// mayDecide refuses a decision on r, the verb (approve, deny), to anyone
// but staff, and to its requester.
func mayDecide(a Actor, r *portal.Request, verb string) error {
	if !a.isStaff() {
		return portal.ErrForbidden
	}
	if a.is(r.UserID) {
		return portal.Errorf(portal.KindForbidden, "You cannot %s your own request: another staff member must decide it.", verb)
	}
	return nil
}

// RequestToDecide returns request id to a member of staff who may verb it
// (approve or deny), for the page that confirms the decision: it refuses
// whom Approve and Deny refuse, the same way (customers and the requester
// with portal.ErrForbidden). The request may no longer be pending. Returns
// portal.ErrNotFound when it does not exist.
func (s *Service) RequestToDecide(ctx context.Context, a Actor, id int64, verb string) (*portal.Request, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	r, err := s.store.RequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := mayDecide(a, r, verb); err != nil {
		return nil, err
	}
	return r, nil
}

// lockForDecision locks pending request id for staff to decide, refusing
// customers, the requester, and a request decided already.
func (s *Service) lockForDecision(ctx context.Context, tx *store.Store, a Actor, id int64, verb string) (*portal.Request, *portal.Cluster, error) {
	if !a.isStaff() {
		return nil, nil, portal.ErrForbidden
	}
	r, c, err := tx.LockRequestAndCluster(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if err := decidable(a, r, verb); err != nil {
		return nil, nil, err
	}
	return r, c, nil
}

// decidable refuses the decision verb on r, locked, unless a may decide it
// and it is still pending.
func decidable(a Actor, r *portal.Request, verb string) error {
	if err := mayDecide(a, r, verb); err != nil {
		return err
	}
	if r.Status != portal.StatusPending {
		by := ""
		if r.DeciderEmail != "" {
			by = " by " + r.DeciderEmail
		}
		return portal.Errorf(portal.KindConflict, "This request was already %s%s.", r.Status, by)
	}
	return nil
}

// ApproveInput is a member of staff's approval of a request.
type ApproveInput struct {
	// Note is shown to the customer.
	Note string
	// ExpiresOn is the last day the credential may work, no later than the
	// cluster's longest lifetime; zero for the cluster's default lifetime.
	ExpiresOn time.Time
}

// Approved is what an approval did: the request as it stands, and the
// credential when this approval issued it (nil while the request waits for
// another approval).
type Approved struct {
	Request    *portal.Request
	Credential *portal.Credential
}

// Approve records a member of staff's approval of a pending request. When it
// is the last approval the cluster's policy asks for (the first, unless two
// are required), the request is approved and its credential issued in the
// same transaction: staff approving at once, or one approving twice, yield
// exactly one credential. The policy in force when the approval is given
// decides. Returns portal.ErrForbidden for customers and for the requester,
// an Error of portal.KindConflict when the request is no longer pending or
// this person approved it already, an Error of portal.KindInvalid for a
// lifetime the cluster does not allow, portal.ErrNotFound when the request
// does not exist.
func (s *Service) Approve(ctx context.Context, a Actor, id int64, in ApproveInput) (*Approved, error) {
	// Who acts is checked before any hashing: a refused caller costs no
	// bcrypt.
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	// The password's bcrypt hash, most of the time issuance takes, starts now
	// and runs while the request is locked and read and the approval's
	// writes are prepared; wasted only when the approval is refused or is not
	// the last one needed. Should the drawn username be taken already (a
	// chance of 2^-50 against each credential of the cluster), the whole
	// approval goes again with new secrets.
	return s.approveDrawing(ctx, a, id, in, func() minter { return issue.NewSecrets(s.cost) })
}

// approveDrawing approves with secrets from draw, drawing again, up to three
// times in all, while the username drawn is taken.
func (s *Service) approveDrawing(ctx context.Context, a Actor, id int64, in ApproveInput, draw func() minter) (*Approved, error) {
	for attempt := 1; ; attempt++ {
		ap, err := s.approve(ctx, a, id, in, draw())
		switch {
		case !errors.Is(err, errUsernameTaken):
			return ap, err
		case attempt == 3:
			return nil, portal.Errorf(portal.KindConflict, "The credential's username clashed with another's three times; approve again.")
		}
	}
}

// errUsernameTaken is an approval's credential refused for its username.
var errUsernameTaken = errors.New("the credential's username is taken on its cluster")

// mintFrom mints with secrets made beforehand, then, should a username
// clash, with new ones.
func (s *Service) mintFrom(secrets *issue.Secrets) mintFunc {
	first := true
	return func(c *portal.Cluster, r *issue.Recipient, expiresAt time.Time) (*issue.Issued, error) {
		if first {
			first = false
			return secrets.Issue(c, r, s.now(), expiresAt)
		}
		return issue.NewSecrets(s.cost).Issue(c, r, s.now(), expiresAt)
	}
}

// mintFunc makes a credential's secrets for a cluster and recipient, to
// expire at expiresAt (zero: the cluster's default lifetime).
type mintFunc func(c *portal.Cluster, r *issue.Recipient, expiresAt time.Time) (*issue.Issued, error)

// minter is the secrets of the credential an approval issues: issue.Secrets,
// or in benchmarks of the database part, ones made beforehand. Its username
// is known at once; Issue waits for the password's hash.
type minter interface {
	Username() string
	Issue(c *portal.Cluster, r *issue.Recipient, now, expiresAt time.Time) (*issue.Issued, error)
}

// mintResult is a credential a minter issued, or why it did not.
type mintResult struct {
	issued *issue.Issued
	err    error
}

func (s *Service) approve(ctx context.Context, a Actor, id int64, in ApproveInput, m minter) (*Approved, error) {
	note, err := portal.CleanText("note", in.Note, portal.MaxJustification)
	if err != nil {
		return nil, err
	}
	var (
		cred *portal.Credential
		req  *portal.Request
		read func() (*portal.Request, error) // the request as the commit left it
	)
	err = s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if !a.isStaff() {
			return portal.ErrForbidden
		}
		// One round trip locks the request, reads its cluster, adds the
		// approval, decides the request when this is the last approval it
		// needs, and draws the credential's ID, with the audit chain's lock
		// behind: every approval writes an event. A refusal below rolls it
		// all back.
		if err := tx.LockAuditChain(ctx); err != nil {
			return err
		}
		ap := &portal.Approval{RequestID: id, ApproverID: a.User.ID, Note: note, ExpiresOn: in.ExpiresOn}
		o, err := tx.LockForApproval(ctx, ap)
		if err != nil {
			return err
		}
		r, cluster := o.Request, o.Cluster
		if err := decidable(a, r, "approve"); err != nil {
			return err
		}
		if _, err := cluster.Expiry(s.now(), in.ExpiresOn); err != nil {
			return err
		}
		if errors.Is(o.Added, portal.ErrConflict) {
			return portal.Errorf(portal.KindConflict,
				"You approved this request already. %s needs the approval of %d different staff members: another must give the next one.",
				cluster.Title(), cluster.Policy.Required())
		} else if o.Added != nil {
			return o.Added
		}
		approvals := o.Approvals
		if last := len(approvals) >= cluster.Policy.Required(); last != o.Decided {
			return fmt.Errorf("request %d: %d of %d approvals, but decided: %v", id, len(approvals), cluster.Policy.Required(), o.Decided)
		}
		if len(approvals) < cluster.Policy.Required() {
			if err := s.recordApproval(ctx, tx, audit, a, r, cluster, ap, len(approvals)); err != nil {
				return err
			}
			req, err = tx.RequestByID(ctx, id)
			return err
		}
		now := s.now()
		expiresAt, err := grantedExpiry(cluster, now, approvals)
		if err != nil {
			return err
		}
		rcpt, err := issue.ParseRecipient(r.PublicKey)
		if err != nil {
			return fmt.Errorf("request %d: stored key no longer parses: %w", id, err)
		}
		// The request is decided already. credentials.txt is rendered and
		// encrypted in the background while the events and the message,
		// which name the credential by the ID drawn for it, are written in
		// one round trip, all while the hash runs.
		issuedAt, expires := issue.Lifetime(cluster, now, expiresAt)
		cred = &portal.Credential{
			ID: o.CredentialID, RequestID: id, UserID: r.UserID, ClusterID: cluster.ID, Username: m.Username(),
			KeyFingerprint: rcpt.Fingerprint, IssuedAt: issuedAt, ExpiresAt: expires,
			ClusterName: cluster.Name, PrometheusURL: cluster.PrometheusURL, OwnerEmail: r.RequesterEmail,
		}
		minted := make(chan mintResult, 1) // buffered: the goroutine ends whether or not it is read
		go func() {
			issued, err := m.Issue(cluster, rcpt, now, expiresAt)
			minted <- mintResult{issued, err}
		}()
		err = audit(
			a.event(portal.ActionRequestApproved, portal.SubjectRequest, id, &r.ClusterID, approvalDetails(note, approvals)),
			a.event(portal.ActionCredentialIssued, portal.SubjectCredential, cred.ID, &r.ClusterID, issuedDetails(id, cred)),
		)
		if err == nil {
			err = tell(ctx, tx)(s.notify.toCustomer(message.Facts{
				Event: portal.ActionRequestApproved, Link: s.notify.requestLink(id, false), Cluster: cluster.Name,
				RequestID: id, CredentialID: cred.ID, Actor: a.name(), Note: note, ExpiresAt: cred.ExpiresAt,
			}, r.UserID, r.RequesterEmail, r.RequesterVerified))
		}
		if err == nil {
			err = tx.SendHeld(ctx)
		}
		if err != nil {
			return err
		}
		res := <-minted
		issued, err := res.issued, res.err
		if err != nil {
			return err
		}
		if issued.Username != cred.Username || !issued.ExpiresAt.Equal(cred.ExpiresAt) {
			return fmt.Errorf("request %d: issued %s until %s, not the %s until %s its events name",
				id, issued.Username, issued.ExpiresAt, cred.Username, cred.ExpiresAt)
		}
		// The credential goes with the COMMIT, and the request is read back
		// behind it: one round trip once the hash is done.
		cred.PasswordHash, cred.Ciphertext = issued.PasswordHash, issued.Ciphertext
		if err := tx.CreateCredentialLater(ctx, cred); err != nil {
			return err
		}
		read = tx.RequestByIDAfterNext(ctx, id)
		return nil
	})
	if cred != nil {
		cred.Ciphertext = nil // stored; not for callers to pass around
	}
	if errors.Is(err, store.ErrCredentialClash) {
		return nil, errUsernameTaken
	} else if err != nil {
		return nil, err
	}
	if read != nil {
		if req, err = read(); err != nil {
			return nil, err
		}
	}
	return &Approved{Request: req, Credential: cred}, nil
}

// recordApproval audits an approval that is not yet the last one needed,
// the nth, and tells staff that the request waits for another.
func (s *Service) recordApproval(ctx context.Context, tx *store.Store, audit auditFunc, a Actor, r *portal.Request,
	c *portal.Cluster, ap *portal.Approval, n int) error {
	details := map[string]any{"approvals": n, "approvals_required": c.Policy.Required()}
	if ap.Note != "" {
		details["note"] = ap.Note
	}
	if !ap.ExpiresOn.IsZero() {
		details["expires_on"] = ap.ExpiresOn.Format(portal.DateFormat)
	}
	if err := audit(a.event(portal.ActionApprovalRecorded, portal.SubjectRequest, r.ID, &r.ClusterID, details)); err != nil {
		return err
	}
	return tell(ctx, tx)(s.notify.toStaff(message.Facts{
		Event: portal.ActionApprovalRecorded, Link: s.notify.requestLink(r.ID, true), Cluster: c.Name, RequestID: r.ID,
		Customer: customerName(r.RequesterName, r.RequesterEmail), Actor: a.name(), Note: ap.Note,
		Approvals: n, ApprovalsRequired: c.Policy.Required(),
	}))
}

// grantedExpiry is when the credential of a request with these approvals
// expires: at the earliest last day any approver chose, or the cluster's
// default lifetime when none chose one. Zero stands for the default.
func grantedExpiry(c *portal.Cluster, now time.Time, approvals []*portal.Approval) (time.Time, error) {
	var earliest time.Time
	for _, ap := range approvals {
		if !ap.ExpiresOn.IsZero() && (earliest.IsZero() || ap.ExpiresOn.Before(earliest)) {
			earliest = ap.ExpiresOn
		}
	}
	if earliest.IsZero() {
		return time.Time{}, nil
	}
	at, err := c.Expiry(now, earliest)
	if err != nil {
		return time.Time{}, portal.Errorf(portal.KindConflict,
			"An earlier approval chose %s as the credential's last day, which %s no longer allows. Deny the request and ask the customer to request again.",
			earliest.Format(portal.DateFormat), c.Title())
	}
	return at, nil
}

// approvalDetails are the audit details of the approval that decides a
// request: its note, who approved it when more than one did, and the last
// day chosen when staff chose one.
func approvalDetails(note string, approvals []*portal.Approval) map[string]any {
	details := map[string]any{}
	if note != "" {
		details["note"] = note
	}
	if len(approvals) > 1 {
		ids := make([]int64, len(approvals))
		for i, ap := range approvals {
			ids[i] = ap.ApproverID
		}
		details["approver_ids"] = ids
	}
	var chosen []string
	for _, ap := range approvals {
		if !ap.ExpiresOn.IsZero() {
			chosen = append(chosen, ap.ExpiresOn.Format(portal.DateFormat))
		}
	}
	if len(chosen) > 0 {
		details["expires_on"] = slices.Min(chosen)
	}
	if len(details) == 0 {
		return nil
	}
	return details
}

func issuedDetails(requestID int64, cred *portal.Credential) map[string]any {
	return map[string]any{
		"request_id": requestID, "username": cred.Username, "expires_at": cred.ExpiresAt.UTC().Format(time.RFC3339),
		"key_fingerprint": cred.KeyFingerprint,
	}
}

// approveByRule approves request r, just made, by the rule of c's policy
// that matched its requester, and issues its credential with secrets made
// beforehand: the actor is the policy. Staff are told after the fact, the
// customer at once.
func (s *Service) approveByRule(ctx context.Context, tx *store.Store, audit auditFunc, r *portal.Request, c *portal.Cluster,
	rcpt *issue.Recipient, rule, matched string, facts message.Facts, secrets *issue.Secrets) error {
	if err := tx.ApproveByRule(ctx, r.ID, rule+":"+matched); err != nil {
		return err
	}
	cred, err := s.storeCredential(ctx, tx, r, c, rcpt, time.Time{}, s.mintFrom(secrets))
	if err != nil {
		return err
	}
	err = audit(
		Policy.event(portal.ActionRequestApproved, portal.SubjectRequest, r.ID, &c.ID, map[string]any{"rule": rule, "matched": matched}),
		Policy.event(portal.ActionCredentialIssued, portal.SubjectCredential, cred.ID, &c.ID, issuedDetails(r.ID, cred)),
	)
	if err != nil {
		return err
	}
	how := portal.DescribeRule(rule, matched)
	facts.Event, facts.Link, facts.Rule, facts.CredentialID, facts.ExpiresAt =
		portal.ActionRequestAutoApproved, s.notify.requestLink(r.ID, false), how, cred.ID, cred.ExpiresAt
	staff, err := s.notify.toStaff(facts)
	if err != nil {
		return err
	}
	customer, err := s.notify.toCustomer(message.Facts{
		Event: portal.ActionRequestApproved, Link: s.notify.requestLink(r.ID, false), Cluster: c.Name,
		RequestID: r.ID, CredentialID: cred.ID, Actor: portal.ActorPolicy, Rule: how, ExpiresAt: cred.ExpiresAt,
	}, r.UserID, r.RequesterEmail, r.RequesterVerified)
	return tell(ctx, tx)(append(staff, customer...), err)
}

// storeCredential mints and stores the credential of request r. A username
// that clashes with one already issued on the cluster is drawn again; the
// clash does not abort the transaction.
func (s *Service) storeCredential(ctx context.Context, tx *store.Store, r *portal.Request, c *portal.Cluster, rcpt *issue.Recipient,
	expiresAt time.Time, mint mintFunc) (*portal.Credential, error) {
	const attempts = 3
	for i := 0; ; i++ {
		issued, err := mint(c, rcpt, expiresAt)
		if err != nil {
			return nil, err
		}
		cred := &portal.Credential{
			RequestID: r.ID, UserID: r.UserID, ClusterID: c.ID, Username: issued.Username,
			PasswordHash: issued.PasswordHash, Ciphertext: issued.Ciphertext, KeyFingerprint: issued.Fingerprint,
			IssuedAt: issued.IssuedAt, ExpiresAt: issued.ExpiresAt,
			ClusterName: c.Name, PrometheusURL: c.PrometheusURL, OwnerEmail: r.RequesterEmail,
		}
		err = tx.CreateCredential(ctx, cred)
		if err == nil || !errors.Is(err, portal.ErrConflict) || i == attempts-1 {
			cred.Ciphertext = nil // stored; not for callers to pass around
			return cred, err
		}
	}
}

// Deny refuses a pending request with a note the customer sees. Returns an
// Error of portal.KindInvalid without a note, and otherwise what Approve returns.
func (s *Service) Deny(ctx context.Context, a Actor, id int64, note string) (*portal.Request, error) {
	note, err := portal.CleanText("note", note, portal.MaxJustification)
	if err != nil {
		return nil, err
	}
	if note == "" {
		return nil, portal.Invalid("note", "Say why the request is denied: the customer sees this note.")
	}
	var denied *portal.Request
	err = s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		r, _, err := s.lockForDecision(ctx, tx, a, id, "deny")
		if err != nil {
			return err
		}
		if err := tx.DecideRequest(ctx, id, portal.StatusDenied, a.User.ID, note); err != nil {
			return err
		}
		if err := audit(a.event(portal.ActionRequestDenied, portal.SubjectRequest, id, &r.ClusterID, noteDetails(note))); err != nil {
			return err
		}
		err = tell(ctx, tx)(s.notify.toCustomer(message.Facts{
			Event: portal.ActionRequestDenied, Link: s.notify.requestLink(id, false),
			NewRequestLink: s.notify.newRequestLink(r.ClusterName), Cluster: r.ClusterName, RequestID: id,
			Actor: a.name(), Note: note,
		}, r.UserID, r.RequesterEmail, r.RequesterVerified))
		if err != nil {
			return err
		}
		denied, err = tx.RequestByID(ctx, id) // with the writes held back before it
		return err
	})
	if err != nil {
		return nil, err
	}
	return denied, nil
}

func noteDetails(note string) map[string]any {
	if note == "" {
		return nil
	}
	return map[string]any{"note": note}
}
