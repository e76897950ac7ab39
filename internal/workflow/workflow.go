// Package workflow holds every rule about who may do what, and carries out
// what people (and the portal itself) do: request, decide, issue, download,
// revoke, renew, manage clusters and their sync tokens, review and verify
// the audit log. Each action takes the acting Actor, checks it, changes the
// state and writes its audit event in one transaction.
package workflow

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// Options tune a Service.
type Options struct {
	// BcryptCost of credential password hashes; issue.DefaultBcryptCost when 0.
	BcryptCost int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives one line per audit event, for shipping elsewhere.
	Log *slog.Logger
	// Notify says how people are told of what happens.
	Notify NotifyOptions
}

// Service carries out the portal's actions on a store.
type Service struct {
	store *store.Store
	cost  int
	now   func() time.Time
	log   *slog.Logger

	notify NotifyOptions
}

// New returns a Service on st.
func New(st *store.Store, opts Options) *Service {
	if opts.BcryptCost == 0 {
		opts.BcryptCost = issue.DefaultBcryptCost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Notify.RequestTTL == 0 {
		opts.Notify.RequestTTL = DefaultRequestTTL
	}
	if opts.Notify.BaseURL == nil {
		opts.Notify.BaseURL = &url.URL{Scheme: "http", Host: "localhost:8080"}
	}
	return &Service{store: st, cost: opts.BcryptCost, now: opts.Now, log: opts.Log, notify: opts.Notify}
}

// Actor is who acts and from where: the user (nil for someone not signed in
// and for the system), and the address and user agent for the audit log.
type Actor struct {
	User      *portal.User
	IP        string
	UserAgent string
	// SessionKey is the store.SessionKey of the browser session the actor
	// acts in, "" when there is none: a sign-in records it, and a list of
	// sessions marks it as the asking browser's.
	SessionKey string
	// Token is the personal access token the actor acts with, nil in a
	// browser session: audit events name its ID, and a token cannot make
	// tokens.
	Token *portal.Token
	// system names the part of the portal that acts by itself (a command, a
	// background job); "" for people and visitors. Only System and Command
	// set it, so no request, whatever its headers, is ever the system.
	system string
}

// System is the actor of what the portal does by itself.
var System = Actor{system: portal.ActorSystem}

// Policy is the actor of what a cluster's access policy decides: a request
// approved at once by one of its rules.
var Policy = Actor{system: portal.ActorPolicy}

// Command is the system acting through the command line, as in
// `portal audit verify`; records that name their maker (the audit
// verifications) name the command. The audit log's actor is the system.
func Command(name string) Actor { return Actor{system: name} }

func (a Actor) name() string {
	if a.system == portal.ActorPolicy {
		return portal.ActorPolicy
	}
	if a.isSystem() {
		return portal.ActorSystem
	}
	if a.User == nil {
		return portal.ActorAnonymous
	}
	if a.User.Email != "" {
		return a.User.Email
	}
	return a.User.Subject
}

// label is the actor as a record names it: the name of a command, else as
// in the audit log.
func (a Actor) label() string {
	if a.isSystem() {
		return a.system
	}
	return a.name()
}

func (a Actor) isStaff() bool { return a.User.IsStaff() }

// isSystem reports whether the portal itself acts, not a person or a
// visitor.
func (a Actor) isSystem() bool { return a.system != "" }

func (a Actor) is(userID int64) bool { return a.User != nil && a.User.ID == userID }

// mayRead reports whether a may see an object owned by ownerID: its owner
// and staff may; to anyone else it does not exist.
func (a Actor) mayRead(ownerID int64) bool { return a.is(ownerID) || a.isStaff() }

// owned is an object that belongs to one user: a request or a credential.
type owned interface{ Owner() int64 }

// visible passes on an object just read, with the read's error, when may
// lets a see it; to anyone else it does not exist (portal.ErrNotFound), as
// for an ID nobody has. For a call such as
// visible[*portal.Request](a, Actor.mayRead)(s.store.RequestByID(ctx, id)).
func visible[T owned](a Actor, may func(Actor, int64) bool) func(T, error) (T, error) {
	return func(v T, err error) (T, error) {
		var none T
		if err != nil {
			return none, err
		}
		if !may(a, v.Owner()) {
			return none, portal.ErrNotFound
		}
		return v, nil
	}
}

// event is an audit event by a about a subject.
func (a Actor) event(action portal.Action, subjectType string, subjectID int64, clusterID *int64, details map[string]any) *portal.AuditEvent {
	e := &portal.AuditEvent{
		Actor: a.name(), Action: action, SubjectType: subjectType, ClusterID: clusterID,
		Details: details, IP: a.IP, UserAgent: a.UserAgent,
	}
	if a.User != nil {
		id := a.User.ID
		e.ActorID = &id
	}
	if subjectID != 0 {
		e.SubjectID = &subjectID
	}
	if a.Token != nil {
		// The person acts, through this token: its ID, never its value.
		d := make(map[string]any, len(details)+1)
		for k, v := range details {
			d[k] = v
		}
		d["token_id"] = a.Token.ID
		e.Details = d
	}
	return e
}

// auditFunc appends audit events within a transaction.
type auditFunc func(events ...*portal.AuditEvent) error

// inTx runs fn in one transaction with a way to append audit events to it.
// Once the transaction commits, each event also goes to the structured log.
func (s *Service) inTx(ctx context.Context, fn func(tx *store.Store, audit auditFunc) error) error {
	var written []*portal.AuditEvent
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		return fn(tx, func(events ...*portal.AuditEvent) error {
			if err := tx.AppendAudit(ctx, events...); err != nil {
				return err
			}
			written = append(written, events...)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, e := range written {
		attrs := []any{"audit_id", e.ID, "action", string(e.Action), "actor", e.Actor, "subject_type", e.SubjectType}
		if e.SubjectID != nil {
			attrs = append(attrs, "subject_id", *e.SubjectID)
		}
		if e.ClusterID != nil {
			attrs = append(attrs, "cluster_id", *e.ClusterID)
		}
		if len(e.Details) > 0 {
			attrs = append(attrs, "details", e.Details)
		}
		s.log.InfoContext(ctx, "audit", attrs...)
	}
	return nil
}

// Record writes an audit event that goes with no state change of the
// portal's: a sign-in, a sign-out, a refused attempt.
func (s *Service) Record(ctx context.Context, a Actor, action portal.Action, subjectType string, subjectID int64, details map[string]any) error {
	return s.inTx(ctx, func(_ *store.Store, audit auditFunc) error {
		return audit(a.event(action, subjectType, subjectID, nil, details))
	})
}

// SignIn records a sign-in: the user is created or refreshed (email, name,
// groups, role), the session a.SessionKey names recorded as theirs, and the
// sign-in audited, in one transaction, so that no one is signed in without
// the record of it, and every signed-in session can be listed and ended.
// u's ID and times are filled in. The session must be stored already; an
// actor without one is portal.ErrInvalid.
func (s *Service) SignIn(ctx context.Context, a Actor, u *portal.User) error {
	if a.SessionKey == "" {
		return fmt.Errorf("sign-in without a session: %w", portal.ErrInvalid)
	}
	return s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if err := tx.UpsertUser(ctx, u); err != nil {
			return err
		}
		if err := tx.CreateUserSession(ctx, a.SessionKey, u.ID, a.IP, a.UserAgent); err != nil {
			return err
		}
		a.User, a.system = u, "" // the person signing in acts, whoever asked
		return audit(a.event(portal.ActionSignedIn, portal.SubjectUser, u.ID, nil, map[string]any{"role": string(u.Role)}))
	})
}
