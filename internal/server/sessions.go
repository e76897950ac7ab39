package server

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/loopback"
	"github.com/2i2c-org/credential-portal/internal/portal"
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
	// sessAttempt + state holds a sign-in under way: its nonce, PKCE
	// verifier and where to go next. Keyed by state, so that sign-ins begun
	// in two tabs both finish.
	sessAttempt   = "oidc_attempt:"
	sessFlash     = "flash"
	sessFlashKind = "flash_kind"
)

// SessionConfig sets how long a sign-in lasts.
type SessionConfig struct {
	IdleTimeout time.Duration // signed out after this long without a request
	Lifetime    time.Duration // signed out this long after signing in, active or not
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

func (s *Server) newSessions(cfg SessionConfig) *scs.SessionManager {
	sm := scs.New()
	// No cleanup goroutine of the store's own (its stop races with its
	// start); expired rows are deleted by the portal's background loop.
	sm.Store = pgxstore.NewWithCleanupInterval(s.store.Pool(), 0)
	sm.Lifetime = cfg.Lifetime
	sm.IdleTimeout = cfg.IdleTimeout
	sm.Cookie.Name = "portal_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.Path = "/"
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = secureCookies(s.cfg.BaseURL)
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		s.log.ErrorContext(r.Context(), "session store", "error", err.Error())
		http.Error(w, "The session store is unavailable; please try again shortly.", http.StatusServiceUnavailable)
	}
	return sm
}

// loadUser puts the signed-in user, if any, in the context. A session whose
// user no longer exists is ended.
func (s *Server) loadUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		c.Set(sessionLoaded, true)
		if id := s.sessions.GetInt64(ctx, sessUserID); id != 0 {
			u, err := s.wf.User(ctx, id)
			switch {
			case errors.Is(err, portal.ErrNotFound):
				if err := s.sessions.Destroy(ctx); err != nil {
					return err
				}
			case err != nil:
				return err
			default:
				c.Set(userContextKey, u)
			}
		}
		return next(c)
	}
}
