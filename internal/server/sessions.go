package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/loopback"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// Keys of values the middleware leaves in the echo context.
const (
	userContextKey = "user"
	csrfContextKey = "csrf"
	sessionLoaded  = "session_loaded" // set once the session is in the request's context
)

// Keys in the server-side session.
const (
	sessUserID = "user_id"
	// sessCSRF is the session's CSRF token: drawn at sign-in, sent in
	// every form, and compared with what a form sends back.
	sessCSRF = "csrf"
	// sessAttempt + state holds a sign-in under way: its nonce, PKCE
	// verifier and where to go next. Keyed by state, so that sign-ins begun
	// in two tabs both finish.
	sessAttempt   = "oidc_attempt:"
	sessFlash     = "flash"
	sessFlashKind = "flash_kind"
	// sessSeen is when the session was last written (Unix milliseconds):
	// idleExpiry sets it at every write, and refreshIdle writes the session
	// again once it is SessionRefresh old.
	sessSeen = "seen"
)

// SessionRefresh is how often, at most, requests move a session's idle
// expiry on. Moving it is a write (an UPDATE of the session's row, a WAL
// flush); doing it at most once a minute, not at every request, lets page
// views write nothing. What it costs is a minute of precision, on the safe
// side: a session is signed out between IdleTimeout − SessionRefresh and
// IdleTimeout after its last request, never later, and its row's expiry,
// by which the sessions pages list open sessions, is exactly when it ends,
// so they never list a session that idled out.
const SessionRefresh = time.Minute

// SessionConfig sets how long a sign-in lasts.
type SessionConfig struct {
	IdleTimeout time.Duration // signed out after this long without a request
	Lifetime    time.Duration // signed out this long after signing in, active or not
	// Refresh is how often, at most, requests move the idle expiry on:
	// SessionRefresh when zero, and never more than half the idle timeout,
	// so that a busy session cannot expire between two refreshes.
	Refresh time.Duration
}

// refresh is the interval at which requests refresh a session's idle
// expiry.
func (c SessionConfig) refresh() time.Duration {
	r := c.Refresh
	if r <= 0 {
		r = SessionRefresh
	}
	return min(r, c.IdleTimeout/2)
}

// currentUser is the signed-in user, or nil.
func currentUser(c echo.Context) *portal.User {
	u, _ := c.Get(userContextKey).(*portal.User)
	return u
}

// secureCookies reports whether cookies must be Secure: always, except for a
// plain-http portal on loopback (development), where a Secure cookie would
// never come back.
func secureCookies(base *url.URL) bool {
	if base.Scheme == "https" {
		return true
	}
	return !loopback.Host(base.Hostname())
}

// sessionCookie is the session cookie's name. Under https it has the
// __Host- prefix: browsers then take it only if it is Secure, for the path /
// and without a Domain, so no sibling subdomain (and no plain-http page of
// this host) can set or overwrite it. A plain-http portal (development) cannot
// have such a cookie.
func sessionCookie(base *url.URL) string {
	if base.Scheme == "https" {
		return "__Host-portal_session"
	}
	return "portal_session"
}

func (s *Server) newSessions(cfg SessionConfig) *scs.SessionManager {
	sm := scs.New()
	sm.Codec = sessionCodec{}
	// No cleanup goroutine of the store's own (its stop races with its
	// start); expired rows are deleted by the portal's background loop.
	sm.Store = idleExpiry{
		store: hashedTokens{store: pgxstore.NewWithCleanupInterval(s.store.Pool(), 0), open: s.wf.OpenSession, cache: s.authCache},
		codec: sm.Codec, idle: cfg.IdleTimeout,
	}
	sm.Lifetime = cfg.Lifetime
	// scs's own idle timeout marks every session it loads as modified, so
	// every request would write its session back. idleExpiry and refreshIdle
	// keep the idle timeout instead, with a write at most every
	// SessionRefresh. The cookie then carries the absolute lifetime; the
	// row's expiry decides.
	sm.IdleTimeout = 0
	sm.Cookie.Name = sessionCookie(s.cfg.BaseURL)
	sm.Cookie.HttpOnly = true
	sm.Cookie.Path = "/"
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = secureCookies(s.cfg.BaseURL)
	sm.ErrorFunc = s.sessionError
	return sm
}

// hashedTokens is the session store as PostgreSQL sees it: pgxstore, with
// every token replaced by its store.SessionKey, so the sessions table holds
// no token that opens a session. (scs's own HashTokenInStore hashes with an
// unexported function; this wrapper keeps the one definition that
// user_sessions, keyed the same way, is written with.)
//
// A request's session is read by open, with the person it signs in, in the
// one statement where pgxstore's Find and a second query for the person
// would take two: a page view's first round trip is its only one for the
// session. openSessions puts in the request's context the sessionOpening
// that receives the person; without one (no request behind the call),
// pgxstore finds the session.
//
// Opened sessions are kept in cache, when it is not nil, and read from it
// while it holds them (authCache); every write and deletion of a
// session drops it there.
type hashedTokens struct {
	store scs.Store
	open  func(ctx context.Context, key, ip, userAgent string) (*store.OpenedSession, error)
	cache *authCache
}

func (h hashedTokens) Find(token string) ([]byte, bool, error) {
	return h.store.Find(store.SessionKey(token))
}

// FindCtx opens the session of the request ctx carries: see hashedTokens.
func (h hashedTokens) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	op, ok := ctx.Value(sessionOpeningKey{}).(*sessionOpening)
	if !ok {
		return h.Find(token)
	}
	key := store.SessionKey(token)
	if o, ok := h.cache.get(key, op.ip); ok {
		op.opened = o
		return o.Data, true, nil
	}
	gen := h.cache.begin()
	o, err := h.open(ctx, key, op.ip, op.userAgent)
	switch {
	case errors.Is(err, portal.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	h.cache.keep(gen, key, op.ip, o)
	op.opened = o
	return o.Data, true, nil
}

// Commit and Delete drop the session from the cache once the database has
// it: a read begun before then is not kept (authCache.begin).
func (h hashedTokens) Commit(token string, b []byte, expiry time.Time) error {
	key := store.SessionKey(token)
	defer h.cache.drop(key)
	return h.store.Commit(key, b, expiry)
}

func (h hashedTokens) Delete(token string) error {
	key := store.SessionKey(token)
	defer h.cache.drop(key)
	return h.store.Delete(key)
}

// sessionOpening is where a request's session, once opened, is kept with
// the person it signs in, for loadUser; ip and userAgent are the request's,
// noted as where the session was last seen.
type sessionOpening struct {
	ip, userAgent string
	opened        *store.OpenedSession
}

type sessionOpeningKey struct{}

// openSessions prepares the request for its session to be opened (by the
// session manager's LoadAndSave, next) with the person it signs in.
func (s *Server) openSessions(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := s.actor(c)
		r := c.Request()
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), sessionOpeningKey{}, &sessionOpening{ip: a.IP, userAgent: a.UserAgent})))
		return next(c)
	}
}

// openedSession is the request's session as opened, or nil if it has none
// stored.
func openedSession(ctx context.Context) *store.OpenedSession {
	if op, ok := ctx.Value(sessionOpeningKey{}).(*sessionOpening); ok {
		return op.opened
	}
	return nil
}

// idleExpiry keeps the idle timeout in the stored session: every write of a
// session records when it happened (sessSeen, in the session's data) and
// gives the row the expiry that is the earlier of the session's absolute
// deadline and now + the idle timeout. A session nobody writes keeps its
// row, and the store finds no session past the row's expiry. The time lives
// in the database, not in the replica, so any replica refreshes it alike.
type idleExpiry struct {
	store hashedTokens
	codec scs.Codec
	idle  time.Duration
}

func (e idleExpiry) Find(token string) ([]byte, bool, error) { return e.store.Find(token) }

func (e idleExpiry) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	return e.store.FindCtx(ctx, token)
}

func (e idleExpiry) Delete(token string) error { return e.store.Delete(token) }

// Commit stores the session, seen now, until its idle expiry or, if that is
// earlier, the deadline scs gives it: with scs's own idle timeout off, the
// end of the session's absolute lifetime.
func (e idleExpiry) Commit(token string, b []byte, deadline time.Time) error {
	d, values, err := e.codec.Decode(b)
	if err != nil {
		return fmt.Errorf("session: decode: %w", err)
	}
	now := time.Now()
	values[sessSeen] = now.UnixMilli()
	if b, err = e.codec.Encode(d, values); err != nil {
		return fmt.Errorf("session: encode: %w", err)
	}
	expiry := now.Add(e.idle).UTC()
	if deadline.Before(expiry) {
		expiry = deadline
	}
	return e.store.Commit(token, b, expiry)
}

// refreshIdle marks the request's session as changed, so that it is
// written with a new idle expiry, once it was last written SessionRefresh
// ago (or the configured refresh). A request without a stored session gets
// none: only a sign-in makes one.
func (s *Server) refreshIdle(ctx context.Context) {
	if s.sessions.Token(ctx) == "" {
		return
	}
	seen := time.UnixMilli(s.sessions.GetInt64(ctx, sessSeen))
	if time.Since(seen) >= s.cfg.Sessions.refresh() {
		s.sessions.Put(ctx, sessSeen, time.Now().UnixMilli())
	}
}

// sessionKey is the stored key of the request's session, or "" when the
// request has none (no session loaded on its route, or none committed yet).
func (s *Server) sessionKey(c echo.Context) string {
	if c.Get(sessionLoaded) == nil {
		return ""
	}
	if tok := s.sessions.Token(c.Request().Context()); tok != "" {
		return store.SessionKey(tok)
	}
	return ""
}

// loadUser puts the signed-in user, if any, in the context. The session's
// data names the user, and its record in user_sessions must still say so: a
// session ended elsewhere (signed out everywhere, ended by staff), or whose
// user no longer exists, is ended here too, and the browser is signed out.
// A signed-in session has a CSRF token from its sign-in; should one lack it,
// it gets one here, before any page is rendered with it. The session's idle
// expiry is refreshed here too, at most every SessionRefresh. The person
// comes from the opening of the session (openSessions, before the session
// manager): a session loaded without it signs in nobody.
func (s *Server) loadUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		c.Set(sessionLoaded, true)
		s.refreshIdle(ctx)
		if id := s.sessions.GetInt64(ctx, sessUserID); id != 0 {
			u, err := s.wf.SessionUser(openedSession(ctx), id)
			switch {
			case errors.Is(err, portal.ErrNotFound):
				if err := s.sessions.Destroy(ctx); err != nil {
					return err
				}
			case err != nil:
				return err
			default:
				c.Set(userContextKey, u)
				if s.sessions.GetString(ctx, sessCSRF) == "" {
					s.sessions.Put(ctx, sessCSRF, newCSRFToken())
				}
			}
		}
		return next(c)
	}
}

// sessionsPage is a person's open sessions: one's own ("Your sessions") or,
// for staff, anyone's.
type sessionsPage struct {
	Person   *portal.User
	Sessions []*portal.Session // a page of them, the latest sign-in first
	Own      bool              // the person is the one asking
	Pager    pager
}

// ownSessions lists the browsers signed in as the person asking.
func (s *Server) ownSessions(cl call) (page, error) {
	return s.sessionsOf(cl, cl.actor.User.ID)
}

// personSessions lists a person's sessions for staff.
func (s *Server) personSessions(cl call) (page, error) {
	return s.sessionsOf(cl, cl.id)
}

func (s *Server) sessionsOf(cl call, userID int64) (page, error) {
	q, err := cl.pageQuery("cursor")
	if err != nil {
		return page{}, err
	}
	ps, err := s.wf.Sessions(cl.ctx, cl.actor, userID, q)
	if err != nil {
		return page{}, err
	}
	p := sessionsPage{Person: ps.Person, Sessions: ps.Sessions, Own: userID == cl.actor.User.ID,
		Pager: newPager("Pages of sessions", cl.c.Request().URL.Path, cl.c.QueryParams(), "cursor", ps.Next, false)}
	title := "Your sessions"
	if !p.Own {
		title = "Sessions of " + ps.Person.DisplayName()
	}
	return page{Title: title, Data: p}, nil
}

// sessionsURL is where the list of userID's sessions is, for the person
// asking.
func sessionsURL(a workflow.Actor, userID int64) string {
	if a.User != nil && a.User.ID == userID {
		return "/sessions"
	}
	return fmt.Sprintf("/staff/people/%d/sessions", userID)
}

// sessionCount says "1 session" or "n sessions".
func sessionCount(n int) string {
	if n == 1 {
		return "1 session"
	}
	return fmt.Sprintf("%d sessions", n)
}

// endSession signs one browser out: one of the person's own, or anyone's
// for staff. Ending the asking browser's own session signs it out now.
func (s *Server) endSession(f call) (done, error) {
	sess, err := s.wf.EndSession(f.ctx, f.actor, f.id)
	if err != nil {
		return done{}, err
	}
	s.authCache.dropUser(sess.UserID) // now here; other replicas when notified
	if sess.Current {
		if err := s.sessions.Destroy(f.ctx); err != nil {
			return done{}, err
		}
		return done{"success", "You are signed out.", "/"}, nil
	}
	return done{"success", "That session is ended: its browser is signed out at its next request.",
		sessionsURL(f.actor, sess.UserID)}, nil
}

// signOutEverywhere ends every session of the person asking, this
// browser's too.
func (s *Server) signOutEverywhere(f call) (done, error) {
	n, err := s.wf.EndSessions(f.ctx, f.actor, f.actor.User.ID)
	if err != nil {
		return done{}, err
	}
	s.authCache.dropUser(f.actor.User.ID)
	if err := s.sessions.Destroy(f.ctx); err != nil {
		return done{}, err
	}
	return done{"success", fmt.Sprintf("Signed out everywhere: %s ended, this browser's too.", sessionCount(n)), "/"}, nil
}

// endPersonSessions ends every session of a person, for staff.
func (s *Server) endPersonSessions(f call) (done, error) {
	n, err := s.wf.EndSessions(f.ctx, f.actor, f.id)
	if err != nil {
		return done{}, err
	}
	s.authCache.dropUser(f.id)
	if f.id == f.actor.User.ID {
		if err := s.sessions.Destroy(f.ctx); err != nil {
			return done{}, err
		}
		return done{"success", fmt.Sprintf("Signed out everywhere: %s ended, this browser's too.", sessionCount(n)), "/"}, nil
	}
	return done{"success", fmt.Sprintf("%s ended. Each browser is signed out at its next request; "+
		"the next sign-in takes the person's role afresh from the identity provider.", sessionCount(n)), sessionsURL(f.actor, f.id)}, nil
}

// peoplePage is a page of the staff's list of people, to find whose
// sessions to see.
type peoplePage struct {
	Query  string
	People []*portal.Person
	Pager  pager
}

func (s *Server) people(cl call) (page, error) {
	text := cl.c.QueryParam("q")
	q, err := cl.pageQuery("cursor")
	if err != nil {
		return page{}, err
	}
	ps, err := s.wf.People(cl.ctx, cl.actor, text, q)
	if err != nil {
		return page{}, err
	}
	return page{Title: "People", Data: peoplePage{Query: text, People: ps.Items,
		Pager: newPager("Pages of people", "/staff/people", cl.c.QueryParams(), "cursor", ps.Next, false)}}, nil
}
