package workflow

import (
	"context"
	"fmt"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// MaxPeople is the longest list of people the staff page shows at once;
// a search narrows it.
const MaxPeople = 200

// SessionUser returns the user the session keyed key signs in, if it is
// userID (what the session's data says), to sign its browser in, and notes
// that the session was seen from ip with userAgent. Returns
// portal.ErrNotFound when the session signs in nobody: it was ended (signed
// out everywhere, or by staff), or the user no longer exists.
func (s *Service) SessionUser(ctx context.Context, key string, userID int64, ip, userAgent string) (*portal.User, error) {
	if key == "" {
		return nil, fmt.Errorf("session without a token: %w", portal.ErrNotFound)
	}
	return s.store.SessionUser(ctx, key, userID, ip, userAgent)
}

// PersonSessions is a person and their open sessions.
type PersonSessions struct {
	Person   *portal.User
	Sessions []*portal.Session
}

// Sessions lists the open sessions of user userID, for that person or for
// staff; the asking browser's is marked. To anyone else the person does
// not exist (portal.ErrNotFound).
func (s *Service) Sessions(ctx context.Context, a Actor, userID int64) (*PersonSessions, error) {
	if !a.mayRead(userID) {
		return nil, fmt.Errorf("sessions of user %d: %w", userID, portal.ErrNotFound)
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	ss, err := s.store.UserSessions(ctx, userID, a.SessionKey)
	if err != nil {
		return nil, err
	}
	return &PersonSessions{Person: u, Sessions: ss}, nil
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

// People lists, for staff, the people whose email or name holds text (all
// when text is empty), the most recently signed in first, at most
// MaxPeople. Returns portal.ErrForbidden for anyone else, and
// portal.ErrInvalid for text that is not plain text.
func (s *Service) People(ctx context.Context, a Actor, text string) ([]*portal.Person, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	text, err := portal.CleanText("q", text, 200)
	if err != nil {
		return nil, err
	}
	return s.store.People(ctx, text, MaxPeople)
}
