package workflow

import (
	"context"
	"time"

	"github.com/2i2c-org/credential-portal/internal/message"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// reminderDays are how many days before expiry owners are reminded.
var reminderDays = []int{14, 3}

// The advisory locks under which one replica at a time does what comes due
// with time ("remind" and "expire" in ASCII).
const (
	reminderLock = 0x72656d696e64
	expiryLock   = 0x657870697265
)

// told is what a sweep did to one thing: its audit event and the facts of
// the message to its owner.
type told struct {
	event *portal.AuditEvent
	facts message.Facts
	owner int64
	email string
	// verified says the owner's email is verified.
	verified bool
}

// sweep runs, under the advisory lock key, a job that changes what has come
// due, and writes in the same transaction an audit event and a message to
// the owner for each change. Only one replica at a time sweeps: the others
// find the lock taken and return 0. Returns how many things changed.
func (s *Service) sweep(ctx context.Context, key int64, job func(tx *store.Store) ([]told, error)) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		ok, err := tx.TryAdvisoryLock(ctx, key)
		if err != nil || !ok {
			return err
		}
		done, err := job(tx)
		if err != nil {
			return err
		}
		var events []*portal.AuditEvent
		var messages []*portal.Message
		for _, d := range done {
			ms, err := s.notify.toCustomer(d.facts, d.owner, d.email, d.verified)
			if err != nil {
				return err
			}
			events, messages = append(events, d.event), append(messages, ms...)
		}
		if err := audit(events...); err != nil {
			return err
		}
		n = len(done)
		return tell(ctx, tx)(messages, nil)
	})
	return n, err
}

// RecordDueReminders records the expiry reminders that have come due, with
// an audit event and a message to the owner each. Only one replica at a
// time does it. Returns how many it recorded.
func (s *Service) RecordDueReminders(ctx context.Context) (int, error) {
	return s.sweep(ctx, reminderLock, func(tx *store.Store) ([]told, error) {
		due, err := tx.RecordDueReminders(ctx, reminderDays, s.now())
		var done []told
		for _, r := range due {
			done = append(done, told{
				event: System.event(portal.ActionCredentialReminder, portal.SubjectCredential, r.CredentialID, &r.ClusterID,
					map[string]any{"days_before": r.DaysBefore, "expires_at": r.ExpiresAt.UTC().Format(time.RFC3339), "owner_id": r.UserID}),
				facts: message.Facts{
					Event: portal.ActionCredentialReminder, Link: s.notify.credentialLink(r.CredentialID),
					Cluster: r.ClusterName, CredentialID: r.CredentialID, Username: r.Username,
					ExpiresAt: r.ExpiresAt, DaysLeft: r.DaysBefore,
				},
				owner: r.UserID, email: r.OwnerEmail, verified: r.OwnerVerified,
			})
		}
		return done, err
	})
}

// ExpireRequests expires the requests that waited longer than their
// cluster's request lifetime (the policy's request_ttl_days, else
// PORTAL_REQUEST_TTL) without a decision: each audited as the system's, with a message
// to its requester, who may then ask again. Only one replica at a time does
// it. Returns how many expired.
func (s *Service) ExpireRequests(ctx context.Context) (int, error) {
	return s.sweep(ctx, expiryLock, func(tx *store.Store) ([]told, error) {
		expired, err := tx.ExpireRequests(ctx, s.now(), s.notify.RequestTTL)
		var done []told
		for _, r := range expired {
			c, cerr := tx.ClusterByID(ctx, r.ClusterID)
			if cerr != nil {
				return nil, cerr
			}
			done = append(done, told{
				event: System.event(portal.ActionRequestExpired, portal.SubjectRequest, r.ID, &r.ClusterID,
					map[string]any{"created_at": r.CreatedAt.UTC().Format(time.RFC3339),
						"waited_longer_than": c.RequestTTL(s.notify.RequestTTL).String()}),
				facts: message.Facts{
					Event: portal.ActionRequestExpired, Link: s.notify.requestLink(r.ID, false),
					NewRequestLink: s.notify.newRequestLink(r.ClusterName), Cluster: r.ClusterName, RequestID: r.ID,
					Since: r.CreatedAt,
				},
				owner: r.UserID, email: r.RequesterEmail, verified: r.RequesterVerified,
			})
		}
		return done, err
	})
}
