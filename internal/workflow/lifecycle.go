package workflow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// syncTokenPrefix marks the portal's sync tokens, so that a leaked one is
// recognisable (secret scanners, logs) for what it is.
const syncTokenPrefix = "portal-sync-"

// MaxReason is the longest revocation reason, in characters.
const MaxReason = 500

// RotateSyncToken makes a new sync token for the cluster's agent, replacing
// any earlier one, and returns it: it is shown once and stored only as its
// SHA-256 (256 random bits need no slow hash). Returns portal.ErrForbidden for
// customers and portal.ErrNotFound for an unknown cluster.
func (s *Service) RotateSyncToken(ctx context.Context, a Actor, clusterName string) (string, error) {
	if !a.isStaff() {
		return "", portal.ErrForbidden
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // crypto/rand.Read never fails
	token := syncTokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	hash := sha256.Sum256([]byte(token))
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		c, err := tx.ClusterByName(ctx, clusterName)
		if err != nil {
			return err
		}
		replaced := c.SyncTokenHash != nil
		if err := tx.SetSyncToken(ctx, c.ID, hash[:]); err != nil {
			return err
		}
		return audit(a.event(portal.ActionClusterSyncTokenRotated, portal.SubjectCluster, c.ID, &c.ID,
			map[string]any{"cluster": c.Name, "replaced_earlier_token": replaced}))
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// ClusterForSyncToken returns the cluster called name if token is its sync
// token, compared in constant time. Anything else (a token missing, wrong or
// another cluster's, a cluster that does not exist) is portal.ErrUnauthorized,
// with no hint of which part was wrong.
func (s *Service) ClusterForSyncToken(ctx context.Context, name, token string) (*portal.Cluster, error) {
	c, err := s.store.ClusterByName(ctx, name)
	if errors.Is(err, portal.ErrNotFound) {
		return nil, fmt.Errorf("sync token for cluster %q: %w", name, portal.ErrUnauthorized)
	}
	if err != nil {
		return nil, err
	}
	got := sha256.Sum256([]byte(token))
	if token == "" || c.SyncTokenHash == nil || subtle.ConstantTimeCompare(got[:], c.SyncTokenHash) != 1 {
		return nil, fmt.Errorf("sync token for cluster %q: %w", name, portal.ErrUnauthorized)
	}
	return c, nil
}

// ActiveCredentials are the credentials cluster c's Prometheus accepts now:
// approved, not revoked, not expired, ordered by username.
func (s *Service) ActiveCredentials(ctx context.Context, c *portal.Cluster) ([]*portal.Credential, error) {
	return s.store.ActiveCredentials(ctx, c.ID, s.now())
}

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

// Revoke revokes credential id at once: its owner may, and so may staff.
// Prometheus refuses it within seconds. Returns an Error of portal.KindInvalid
// without a reason, portal.ErrNotFound for anyone else, and an Error of
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
func (s *Service) ReportCompromised(ctx context.Context, a Actor, id int64, details string) (*portal.Credential, error) {
	details, err := portal.CleanText("details", details, MaxReason)
	if err != nil {
		return nil, err
	}
	reason := "reported compromised by the owner"
	if details != "" {
		reason += ": " + details
	}
	return s.revoke(ctx, a, id, reason, true)
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
		return audit(a.event(action, portal.SubjectCredential, id, &c.ClusterID, map[string]any{
			"reason": reason, "username": c.Username, "by_owner": a.is(c.UserID),
		}))
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

// Revocations lists revoked credentials, the latest first. Returns
// portal.ErrForbidden for customers.
func (s *Service) Revocations(ctx context.Context, a Actor) ([]*portal.Credential, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	return s.store.Revocations(ctx)
}

// reminderDays are how many days before expiry owners are reminded.
var reminderDays = []int{14, 3}

// reminderLock is the advisory lock under which one replica records due
// reminders ("remind" in ASCII).
const reminderLock = 0x72656d696e64

// RecordDueReminders records the expiry reminders that have come due, with
// an audit event each. Only one replica at a time does it: the others find
// the lock taken and return 0. Returns how many it recorded.
func (s *Service) RecordDueReminders(ctx context.Context) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		ok, err := tx.TryAdvisoryLock(ctx, reminderLock)
		if err != nil || !ok {
			return err
		}
		due, err := tx.RecordDueReminders(ctx, reminderDays, s.now())
		if err != nil {
			return err
		}
		for _, r := range due {
			err := audit(System.event(portal.ActionCredentialReminder, portal.SubjectCredential, r.CredentialID, &r.ClusterID,
				map[string]any{"days_before": r.DaysBefore, "expires_at": r.ExpiresAt.UTC().Format(time.RFC3339), "owner_id": r.UserID}))
			if err != nil {
				return err
			}
		}
		n = len(due)
		return nil
	})
	return n, err
}

// RecentCompromises counts the credentials reported compromised in the last
// week, for the staff's attention. Returns portal.ErrForbidden for customers.
func (s *Service) RecentCompromises(ctx context.Context, a Actor) (int, error) {
	if !a.isStaff() {
		return 0, portal.ErrForbidden
	}
	return s.store.CompromisedSince(ctx, s.now().Add(-7*24*time.Hour))
}
