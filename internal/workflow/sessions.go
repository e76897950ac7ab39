package workflow

import (
	"context"
	"fmt"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// OpenSession opens the browser session keyed key for a request from ip
// with userAgent: the session's data, and the person its record signs in,
// read in one statement (a page view's first); the session is noted as seen.
// Returns portal.ErrNotFound when there is no live session keyed key.
func (s *Service) OpenSession(ctx context.Context, key, ip, userAgent string) (*store.OpenedSession, error) {
	if key == "" {
		return nil, fmt.Errorf("session without a token: %w", portal.ErrNotFound)
	}
	return s.store.OpenSession(ctx, key, ip, userAgent)
}

// SessionUser returns the user the opened session signs in, if it is userID
// (what the session's data says), to sign its browser in. Returns
// portal.ErrNotFound when the session signs in nobody, or someone else: it
// was ended (signed out everywhere, or by staff), or the user no longer
// exists.
func (s *Service) SessionUser(o *store.OpenedSession, userID int64) (*portal.User, error) {
	if o == nil || o.User == nil || o.User.ID != userID {
		return nil, fmt.Errorf("session of user %d: %w", userID, portal.ErrNotFound)
	}
	return o.User, nil
}

// PersonSessions is a person and a page of their open sessions.
type PersonSessions struct {
	Person   *portal.User
	Sessions []*portal.Session
	// Next is the cursor of the next page, "" on the last.
	Next string
}

// Sessions is a page of the open sessions of user userID, the latest
// sign-in first, for that person or for staff; the asking browser's is
// marked. To anyone else the person does not exist (portal.ErrNotFound).
// Returns an Error of portal.KindInvalid for a limit out of range.
func (s *Service) Sessions(ctx context.Context, a Actor, userID int64, q portal.PageQuery) (*PersonSessions, error) {
	if !a.mayRead(userID) {
		return nil, fmt.Errorf("sessions of user %d: %w", userID, portal.ErrNotFound)
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	ss, err := s.store.UserSessionsPage(ctx, userID, a.SessionKey, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	p := portal.NewPage(ss, q.Limit, func(s *portal.Session) portal.PageCursor { return portal.PageCursor{At: s.CreatedAt, ID: s.ID} })
	return &PersonSessions{Person: u, Sessions: p.Items, Next: p.Next}, nil
}

// EndSession ends one session, by its owner (signing out another browser)
// or staff, and audits it in the same transaction; its browser is signed out
// at its next request. It returns the session as it was. A session that is
// not the actor's to end, or no longer open, is portal.ErrNotFound.
func (s *Service) EndSession(ctx context.Context, a Actor, id int64) (*portal.Session, error) {
	var ended *portal.Session
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		sess, err := visible[*portal.Session](a, Actor.mayRead)(tx.SessionByID(ctx, id, a.SessionKey))
		if err != nil {
			return err
		}
		if err := tx.EndSession(ctx, id); err != nil {
			return err
		}
		ended = sess
		return audit(a.event(portal.ActionSessionEnded, portal.SubjectUser, sess.UserID, nil,
			map[string]any{"session_id": sess.ID, "by": a.endedBy(sess.UserID)}))
	})
	return ended, err
}

// EndSessions ends every session of user userID, audited in the same
// transaction: the person signing out everywhere, or staff ending a
// person's sessions (someone who left the staff loses the staff pages at
// their next request, and their next sign-in recomputes their role). It
// returns how many sessions were open. To anyone else the person does not
// exist (portal.ErrNotFound).
func (s *Service) EndSessions(ctx context.Context, a Actor, userID int64) (int, error) {
	if !a.mayRead(userID) {
		return 0, fmt.Errorf("sessions of user %d: %w", userID, portal.ErrNotFound)
	}
	var n int
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if _, err := tx.UserByID(ctx, userID); err != nil {
			return err
		}
		var err error
		if n, err = tx.EndUserSessions(ctx, userID); err != nil {
			return err
		}
		return audit(a.event(portal.ActionSessionsEnded, portal.SubjectUser, userID, nil,
			map[string]any{"sessions": n, "by": a.endedBy(userID)}))
	})
	return n, err
}

// endedBy says in an audit record whose doing an ending of ownerID's sessions
// was: the owner's own, or staff's.
func (a Actor) endedBy(ownerID int64) string {
	if a.is(ownerID) {
		return "owner"
	}
	return "staff"
}

// People is a page of the people whose email or name holds text (all when
// text is empty), the newest first, for staff. Returns
// portal.ErrForbidden for anyone else, and portal.ErrInvalid for text that
// is not plain text or a limit out of range.
func (s *Service) People(ctx context.Context, a Actor, text string, q portal.PageQuery) (*portal.Page[*portal.Person], error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	text, err := portal.CleanText("q", text, 200)
	if err != nil {
		return nil, err
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	ps, err := s.store.PeoplePage(ctx, text, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	return portal.NewPage(ps, q.Limit, func(p *portal.Person) portal.PageCursor {
		return portal.PageCursor{At: p.CreatedAt, ID: p.ID}
	}), nil
}
