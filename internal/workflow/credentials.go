package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/2i2c-org/credential-portal/internal/message"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// Credential returns credential id to its owner or to staff; anyone else gets
// portal.ErrNotFound, as for a credential that does not exist.
func (s *Service) Credential(ctx context.Context, a Actor, id int64) (*portal.Credential, error) {
	return visible[*portal.Credential](a, Actor.mayRead)(s.store.CredentialByID(ctx, id))
}

// Credentials is a page of the actor's own credentials, newest issued
// first: staff's own too, never another person's. Returns
// portal.ErrForbidden for no one signed in and an Error of
// portal.KindInvalid for a limit out of range.
func (s *Service) Credentials(ctx context.Context, a Actor, q portal.PageQuery) (*portal.Page[*portal.Credential], error) {
	if a.User == nil {
		return nil, portal.ErrForbidden
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	cs, err := s.store.UserCredentialsPage(ctx, a.User.ID, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	return portal.NewPage(cs, q.Limit, issuedKey), nil
}

func issuedKey(c *portal.Credential) portal.PageCursor {
	return portal.PageCursor{At: c.IssuedAt, ID: c.ID}
}

// Download returns credentials.txt.age of credential id, counts the download
// and audits it. Only the owner may download: for anyone else, staff
// included, the credential does not exist (portal.ErrNotFound). A revoked or
// expired credential is refused with an Error of portal.KindConflict.
func (s *Service) Download(ctx context.Context, a Actor, id int64) ([]byte, *portal.Credential, error) {
	var (
		cred       *portal.Credential
		ciphertext []byte
	)
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		var err error
		if cred, err = tx.CredentialByID(ctx, id); err != nil {
			return err
		}
		if !a.is(cred.UserID) {
			return fmt.Errorf("credential %d: %w", id, portal.ErrNotFound)
		}
		switch cred.State(s.now()) {
		case portal.CredentialRevoked:
			return portal.Errorf(portal.KindConflict, "This credential was revoked and no longer works. Request a new one.")
		case portal.CredentialExpired:
			return portal.Errorf(portal.KindConflict, "This credential has expired. Renew it to get a new one.")
		}
		if ciphertext, err = tx.CredentialCiphertext(ctx, id); err != nil {
			return err
		}
		n, err := tx.RecordDownload(ctx, id)
		if err != nil {
			return err
		}
		return audit(a.event(portal.ActionCredentialDownloaded, portal.SubjectCredential, id, &cred.ClusterID,
			map[string]any{"download": n}))
	})
	if err != nil {
		return nil, nil, err
	}
	return ciphertext, cred, nil
}

// MaxReason is the longest revocation reason, in characters.
const MaxReason = 500

func checkReason(reason string) (string, error) {
	reason, err := portal.CleanText("reason", reason, MaxReason)
	if err != nil {
		return "", err
	}
	if reason == "" {
		return "", portal.Invalid("reason", "Say why the credential is revoked; it is kept in its history.")
	}
	return reason, nil
}

// Revoke revokes credential id at once: its owner may, and so may staff (a
// member of staff acting through a token needs its admin scope for another
// person's). Prometheus refuses it within seconds. Returns an Error of
// portal.KindInvalid without a reason, portal.ErrNotFound for anyone else,
// portal.ErrForbidden for a staff token without admin, and an Error of
// portal.KindConflict when it is revoked already.
func (s *Service) Revoke(ctx context.Context, a Actor, id int64, reason string) (*portal.Credential, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return nil, err
	}
	return s.revoke(ctx, a, id, reason, false)
}

// ReportCompromised revokes the owner's credential id at once and flags it
// for staff as compromised. details, optional, says what happened. Returns
// what Revoke returns; only the owner may report (staff revoke instead).
func (s *Service) ReportCompromised(ctx context.Context, a Actor, id int64, details string) (*Reported, error) {
	details, err := portal.CleanText("details", details, MaxReason)
	withheld := false
	if pe := (*portal.Error)(nil); errors.As(err, &pe) && pe.Secret {
		// The leak is real whatever was pasted: revoke at once all the
		// same, keeping none of the text.
		details, err, withheld = "", nil, true
	}
	if err != nil {
		return nil, err
	}
	reason := "reported compromised by the owner"
	switch {
	case withheld:
		reason += " (what they wrote held a password or private key, and was not kept)"
	case details != "":
		reason += ": " + details
	}
	cred, err := s.revoke(ctx, a, id, reason, true)
	if err != nil {
		return nil, err
	}
	return &Reported{Credential: cred, DetailsWithheld: withheld}, nil
}

// Reported is what a compromise report did: the credential, revoked, and
// whether the details were left out because they held a secret.
type Reported struct {
	Credential      *portal.Credential
	DetailsWithheld bool
}

func (s *Service) revoke(ctx context.Context, a Actor, id int64, reason string, compromised bool) (*portal.Credential, error) {
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		c, err := tx.CredentialByID(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case compromised && !a.is(c.UserID):
			return fmt.Errorf("credential %d: %w", id, portal.ErrNotFound)
		case !a.mayRead(c.UserID):
			return fmt.Errorf("credential %d: %w", id, portal.ErrNotFound)
		case a.Token != nil && !a.is(c.UserID) && !a.Token.Allows(a.User, portal.ScopeAdmin):
			// The request scope is for one's own credentials, as for tokens.
			return portal.Errorf(portal.KindForbidden, "Revoking another person's credential needs a token with the admin scope.")
		case c.RevokedAt != nil:
			return portal.Errorf(portal.KindConflict, "This credential was revoked already, on %s.", c.RevokedAt.UTC().Format("2 Jan 2006 15:04 UTC"))
		}
		err = tx.RevokeCredential(ctx, id, &a.User.ID, reason, compromised)
		if errors.Is(err, portal.ErrConflict) { // revoked by someone else a moment ago
			return portal.Errorf(portal.KindConflict, "This credential was revoked already.")
		}
		if err != nil {
			return err
		}
		action := portal.ActionCredentialRevoked
		if compromised {
			action = portal.ActionCredentialCompromised
		}
		err = audit(a.event(action, portal.SubjectCredential, id, &c.ClusterID, map[string]any{
			"reason": reason, "username": c.Username, "by_owner": a.is(c.UserID),
		}))
		if err != nil {
			return err
		}
		f := message.Facts{
			Event: action, Link: s.notify.credentialLink(id), NewRequestLink: s.notify.newRequestLink(c.ClusterName),
			Cluster: c.ClusterName, CredentialID: id, Username: c.Username, Customer: c.OwnerEmail,
			Actor: a.name(), Reason: reason,
		}
		switch {
		case compromised: // staff must look into it
			return tell(ctx, tx)(s.notify.toStaff(f))
		case !a.is(c.UserID): // the owner did not do it, so must be told
			return tell(ctx, tx)(s.notify.toCustomer(f, c.UserID, c.OwnerEmail, c.OwnerVerified))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.store.CredentialByID(ctx, id)
}

// Renew starts the renewal of the owner's credential id: a new pending
// request with the same cluster, key and justification. The old credential
// stays valid until it expires or is revoked. Returns portal.ErrNotFound for
// anyone but the owner, and what CreateRequest returns.
func (s *Service) Renew(ctx context.Context, a Actor, id int64) (*portal.Request, error) {
	old, err := s.RenewalDraft(ctx, a, id)
	if err != nil {
		return nil, err
	}
	return s.createRequest(ctx, a, RequestInput{
		Cluster: old.ClusterName, PublicKey: old.PublicKey, Justification: old.Justification,
	}, id)
}

// RenewWithKey is Renew with what the owner typed: another key, another
// justification. A request for another cluster is a new request, not a
// renewal of credential id. Returns portal.ErrNotFound for anyone but the
// owner, and what CreateRequest returns.
func (s *Service) RenewWithKey(ctx context.Context, a Actor, id int64, in RequestInput) (*portal.Request, error) {
	old, err := s.RenewalDraft(ctx, a, id)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Cluster) != old.ClusterName {
		id = 0
	}
	return s.createRequest(ctx, a, in, id)
}

// RenewalDraft returns the request that credential id was issued for, for
// its owner to start a renewal from. Returns portal.ErrNotFound for anyone
// but the owner.
func (s *Service) RenewalDraft(ctx context.Context, a Actor, id int64) (*portal.Request, error) {
	c, err := visible[*portal.Credential](a, Actor.is)(s.store.CredentialByID(ctx, id))
	if err != nil {
		return nil, err
	}
	return s.store.RequestByID(ctx, c.RequestID)
}

// Revocations is a page of the revoked credentials, the latest revocation
// first. Returns portal.ErrForbidden for customers and an Error of
// portal.KindInvalid for a limit out of range.
func (s *Service) Revocations(ctx context.Context, a Actor, q portal.PageQuery) (*portal.Page[*portal.Credential], error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	cs, err := s.store.RevocationsPage(ctx, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	return portal.NewPage(cs, q.Limit, func(c *portal.Credential) portal.PageCursor {
		return portal.PageCursor{At: *c.RevokedAt, ID: c.ID}
	}), nil
}

// RevocationCount counts the revoked credentials, up to portal.CountCap.
// Returns portal.ErrForbidden for customers.
func (s *Service) RevocationCount(ctx context.Context, a Actor) (portal.Count, error) {
	if !a.isStaff() {
		return portal.Count{}, portal.ErrForbidden
	}
	return s.store.RevocationCount(ctx)
}

// RecentCompromises counts the credentials reported compromised in the last
// week, for the staff's attention. Returns portal.ErrForbidden for customers.
func (s *Service) RecentCompromises(ctx context.Context, a Actor) (int, error) {
	if !a.isStaff() {
		return 0, portal.ErrForbidden
	}
	return s.store.CompromisedSince(ctx, s.now().Add(-7*24*time.Hour))
}
