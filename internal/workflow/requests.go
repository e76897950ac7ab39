package workflow

import (
	"context"
	"errors"
	"fmt"
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
	// The key first: a private key must be refused whatever else is wrong.
	rcpt, err := issue.ParseRecipient(in.PublicKey)
	if err != nil {
		return nil, err
	}
	justification, err := portal.CleanText("justification", in.Justification, portal.MaxJustification)
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(justification); n < portal.MinJustification {
		return nil, portal.Invalid("justification", "Say in %d to %d characters what you will use the access for (you wrote %d).",
			portal.MinJustification, portal.MaxJustification, n)
	}
	cluster, err := s.store.ClusterByName(ctx, strings.TrimSpace(in.Cluster))
	if errors.Is(err, portal.ErrNotFound) {
		return nil, portal.Invalid("cluster", "Choose a cluster from the list.")
	}
	if err != nil {
		return nil, err
	}
	if !cluster.Enabled {
		return nil, portal.Invalid("cluster", "%s is not taking new requests at the moment. Contact 2i2c support if you need access.", cluster.Title())
	}

	r := &portal.Request{
		UserID: a.User.ID, ClusterID: cluster.ID, PublicKey: rcpt.Key, KeyType: rcpt.Type,
		KeyFingerprint: rcpt.Fingerprint, Justification: justification, ClusterName: cluster.Name,
	}
	details := map[string]any{"cluster": cluster.Name, "key_type": string(rcpt.Type), "key_fingerprint": rcpt.Fingerprint}
	if renews != 0 {
		r.RenewsCredentialID = &renews
		details["renews_credential_id"] = renews
	}
	err = s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		if err := audit(a.event(portal.ActionRequestCreated, portal.SubjectRequest, r.ID, &cluster.ID, details)); err != nil {
			return err
		}
		return tell(ctx, tx)(s.notify.toStaff(message.Facts{
			Event: portal.ActionRequestCreated, Link: s.notify.requestLink(r.ID, true),
			Cluster: cluster.Name, RequestID: r.ID, Renews: renews, Customer: customerName(a.User.Name, a.User.Email),
			Justification: justification, KeyType: rcpt.Type.Label(),
		}))
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

// Requests lists requests: a customer's own, newest first; or, for staff
// giving a status, everyone's with that status (pending ones oldest first).
func (s *Service) Requests(ctx context.Context, a Actor, status portal.RequestStatus) ([]*portal.Request, error) {
	if a.User == nil {
		return nil, portal.ErrForbidden
	}
	if status != "" && a.isStaff() {
		return s.store.RequestsByStatus(ctx, status)
	}
	rs, err := s.store.RequestsByUser(ctx, a.User.ID)
	if err != nil || status == "" {
		return rs, err
	}
	mine := rs[:0]
	for _, r := range rs {
		if r.Status == status {
			mine = append(mine, r)
		}
	}
	return mine, nil
}

// Queue is the staff queue: pending requests, oldest first. Returns
// portal.ErrForbidden for customers.
func (s *Service) Queue(ctx context.Context, a Actor) ([]*portal.Request, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	return s.store.RequestsByStatus(ctx, portal.StatusPending)
}

// CancelRequest withdraws a pending request. Only its requester may; others
// get portal.ErrNotFound (staff: ErrForbidden, they deny instead). Returns a
// Error of portal.KindConflict when the request is no longer pending.
func (s *Service) CancelRequest(ctx context.Context, a Actor, id int64) (*portal.Request, error) {
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		r, err := tx.LockRequest(ctx, id)
		if err != nil {
			return err
		}
		if !a.is(r.UserID) {
			if a.isStaff() {
				return portal.Errorf(portal.KindForbidden, "Only the requester can cancel a request; deny it instead.")
			}
			return fmt.Errorf("request %d: %w", id, portal.ErrNotFound)
		}
		if r.Status != portal.StatusPending {
			return portal.Errorf(portal.KindConflict, "This request is already %s; only a pending request can be cancelled.", r.Status)
		}
		if err := tx.DecideRequest(ctx, id, portal.StatusCancelled, a.User.ID, ""); err != nil {
			return err
		}
		return audit(a.event(portal.ActionRequestCancelled, portal.SubjectRequest, id, &r.ClusterID, nil))
	})
	if err != nil {
		return nil, err
	}
	return s.store.RequestByID(ctx, id)
}

// lockForDecision locks pending request id for staff to decide, refusing
// customers, the requester, and a request decided already.
func (s *Service) lockForDecision(ctx context.Context, tx *store.Store, a Actor, id int64, verb string) (*portal.Request, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	r, err := tx.LockRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.is(r.UserID) {
		return nil, portal.Errorf(portal.KindForbidden, "You cannot %s your own request: another staff member must decide it.", verb)
	}
	if r.Status != portal.StatusPending {
		by := ""
		if r.DeciderEmail != "" {
			by = " by " + r.DeciderEmail
		}
		return nil, portal.Errorf(portal.KindConflict, "This request was already %s%s.", r.Status, by)
	}
	return r, nil
}

// Approve approves a pending request and issues its credential in the same
// transaction: two staff approving at once, or one approving twice, yield
// exactly one credential. Returns portal.ErrForbidden for customers and for
// the requester, an Error of portal.KindConflict when the request is no
// longer pending, portal.ErrNotFound when it does not exist.
func (s *Service) Approve(ctx context.Context, a Actor, id int64, note string) (*portal.Credential, error) {
	// Who acts is checked before any hashing: a refused caller costs no
	// bcrypt.
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	// The password's bcrypt hash, most of the time issuance takes, starts now
	// and runs while the request is locked and read; wasted only when the
	// approval is refused.
	secrets := issue.NewSecrets(s.cost)
	first := true
	return s.approve(ctx, a, id, note, func(c *portal.Cluster, r *issue.Recipient) (*issue.Issued, error) {
		if first {
			first = false
			return secrets.Issue(c, r, s.now())
		}
		return issue.Issue(c, r, s.now(), s.cost) // a username clash: new secrets
	})
}

// mintFunc makes a credential's secrets for a cluster and recipient:
// issue.Issue, or in benchmarks of the database part, one made beforehand.
type mintFunc func(*portal.Cluster, *issue.Recipient) (*issue.Issued, error)

func (s *Service) approve(ctx context.Context, a Actor, id int64, note string, mint mintFunc) (*portal.Credential, error) {
	note, err := portal.CleanText("note", note, portal.MaxJustification)
	if err != nil {
		return nil, err
	}
	var cred *portal.Credential
	err = s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		r, err := s.lockForDecision(ctx, tx, a, id, "approve")
		if err != nil {
			return err
		}
		cluster, err := tx.ClusterByID(ctx, r.ClusterID)
		if err != nil {
			return err
		}
		rcpt, err := issue.ParseRecipient(r.PublicKey)
		if err != nil {
			return fmt.Errorf("request %d: stored key no longer parses: %w", id, err)
		}
		// The decision first: it does not need the credential, so it is
		// written while the password is still being hashed.
		if err := tx.DecideRequest(ctx, id, portal.StatusApproved, a.User.ID, note); err != nil {
			return err
		}
		// And the audit chain's lock, so that once the credential is stored
		// its events cost one round trip. Approvals are rare; other writers
		// wait a millisecond at most.
		if err := tx.LockAuditChain(ctx); err != nil {
			return err
		}
		if cred, err = s.storeCredential(ctx, tx, r, cluster, rcpt, mint); err != nil {
			return err
		}
		err = audit(
			a.event(portal.ActionRequestApproved, portal.SubjectRequest, id, &r.ClusterID, noteDetails(note)),
			a.event(portal.ActionCredentialIssued, portal.SubjectCredential, cred.ID, &r.ClusterID, map[string]any{
				"request_id": id, "username": cred.Username, "expires_at": cred.ExpiresAt.UTC().Format(time.RFC3339),
				"key_fingerprint": cred.KeyFingerprint,
			}),
		)
		if err != nil {
			return err
		}
		return tell(ctx, tx)(s.notify.toCustomer(message.Facts{
			Event: portal.ActionRequestApproved, Link: s.notify.requestLink(id, false), Cluster: cluster.Name,
			RequestID: id, CredentialID: cred.ID, Actor: a.name(), Note: note, ExpiresAt: cred.ExpiresAt,
		}, r.UserID, r.RequesterEmail, r.RequesterVerified))
	})
	if err != nil {
		return nil, err
	}
	return cred, nil
}

// storeCredential mints and stores the credential of request r. A username
// that clashes with one already issued on the cluster is drawn again; the
// clash does not abort the transaction.
func (s *Service) storeCredential(ctx context.Context, tx *store.Store, r *portal.Request, c *portal.Cluster, rcpt *issue.Recipient, mint mintFunc) (*portal.Credential, error) {
	const attempts = 3
	for i := 0; ; i++ {
		issued, err := mint(c, rcpt)
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
	err = s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		r, err := s.lockForDecision(ctx, tx, a, id, "deny")
		if err != nil {
			return err
		}
		if err := tx.DecideRequest(ctx, id, portal.StatusDenied, a.User.ID, note); err != nil {
			return err
		}
		if err := audit(a.event(portal.ActionRequestDenied, portal.SubjectRequest, id, &r.ClusterID, noteDetails(note))); err != nil {
			return err
		}
		return tell(ctx, tx)(s.notify.toCustomer(message.Facts{
			Event: portal.ActionRequestDenied, Link: s.notify.requestLink(id, false),
			NewRequestLink: s.notify.newRequestLink(r.ClusterName), Cluster: r.ClusterName, RequestID: id,
			Actor: a.name(), Note: note,
		}, r.UserID, r.RequesterEmail, r.RequesterVerified))
	})
	if err != nil {
		return nil, err
	}
	return s.store.RequestByID(ctx, id)
}

func noteDetails(note string) map[string]any {
	if note == "" {
		return nil
	}
	return map[string]any{"note": note}
}
