package server

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// Keys of values the middleware leaves in the echo context.
const (
	userContextKey = "user"
	csrfContextKey = "csrf"
	sessionLoaded  = "session_loaded" // set once the session is in the request's context
)

// maxAttempts is how many sign-ins a browser may have under way at once.
const maxAttempts = 5

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
	host := base.Hostname()
	ip := net.ParseIP(host)
	return host != "localhost" && (ip == nil || !ip.IsLoopback())
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

// requireUser sends a visitor who is not signed in to sign in and back.
func (s *Server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentUser(c) != nil {
			return next(c)
		}
		if isAPI(c) {
			return echo.NewHTTPError(http.StatusUnauthorized, "sign in first")
		}
		if c.Request().Method != http.MethodGet {
			return echo.NewHTTPError(http.StatusUnauthorized, "Your session has ended. Sign in again.")
		}
		return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
	}
}

// requireStaff refuses customers.
func (s *Server) requireStaff(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !currentUser(c).IsStaff() {
			return portal.ErrForbidden
		}
		return next(c)
	}
}

// csrf checks a token on every state-changing form. The JSON API is exempt:
// it takes only application/json from the portal's own origin, which a
// cross-site form cannot send.
func (s *Server) csrf() echo.MiddlewareFunc {
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			return isAPI(c) || strings.HasPrefix(p, "/oidc/")
		},
		TokenLookup:    "form:csrf,header:X-CSRF-Token",
		ContextKey:     csrfContextKey,
		CookieName:     "portal_csrf",
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   secureCookies(s.cfg.BaseURL),
		CookieSameSite: http.SameSiteLaxMode,
		ErrorHandler: func(err error, c echo.Context) error {
			return echo.NewHTTPError(http.StatusForbidden,
				"This form has expired or did not come from the portal. Go back, reload the page and try again.")
		},
	})
}

// signInLimit limits sign-in starts and callbacks per client address: enough
// for people, too few for a script hammering the provider. The count is per
// replica, which is what a brake on one client needs.
func signInLimit() echo.MiddlewareFunc {
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Every(3 * time.Second), Burst: 20, ExpiresIn: 5 * time.Minute,
		}),
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return echo.NewHTTPError(http.StatusTooManyRequests, "Too many sign-in attempts from your address. Wait a minute and try again.")
		},
	})
}

// requestLimit limits new requests (and renewals) per signed-in person: a
// person makes a handful, a script looping on the form many.
func requestLimit() echo.MiddlewareFunc {
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		IdentifierExtractor: func(c echo.Context) (string, error) {
			if u := currentUser(c); u != nil {
				return "user:" + strconv.FormatInt(u.ID, 10), nil
			}
			return c.RealIP(), nil
		},
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Every(10 * time.Second), Burst: 30, ExpiresIn: 10 * time.Minute,
		}),
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return echo.NewHTTPError(http.StatusTooManyRequests, "Too many requests from your address. Wait a minute and try again.")
		},
	})
}

// localPath returns next if it is a path on this site, else "". It refuses
// anything a browser could take to another host: a scheme, a host, "//", a
// backslash.
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return u.RequestURI()
}

// login starts a sign-in: the attempt's secrets go into the session, the
// person goes to the provider.
func (s *Server) login(c echo.Context) error {
	next := localPath(c.QueryParam("next"))
	if next == "" {
		next = "/dashboard"
	}
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, next)
	}
	a := oidc.NewAttempt()
	dest, err := s.oidc.AuthCodeURL(a, c.QueryParam("login_hint"))
	if errors.Is(err, oidc.ErrUnavailable) {
		return s.renderError(c, http.StatusServiceUnavailable, "Sign-in is unavailable for now",
			"The identity provider is not answering. The portal keeps trying; please try again in a minute.",
			"Try again", c.Request().URL.RequestURI())
	}
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// A browser that starts many sign-ins and finishes none keeps a few.
	var pending []string
	for _, k := range s.sessions.Keys(ctx) {
		if strings.HasPrefix(k, sessAttempt) {
			pending = append(pending, k)
		}
	}
	if len(pending) >= maxAttempts {
		for _, k := range pending {
			s.sessions.Remove(ctx, k)
		}
	}
	s.sessions.Put(ctx, sessAttempt+a.State, a.Nonce+" "+a.Verifier+" "+next)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, dest)
}

// callback finishes a sign-in. The state must name an attempt this
// browser's session holds; the code is exchanged and the ID token verified; the user
// is recorded with the role the policy gives them now; the session gets a new
// token, so one fixed before sign-in is worth nothing after.
func (s *Server) callback(c echo.Context) error {
	ctx := c.Request().Context()
	// The state names the attempt: one this browser's session does not hold
	// was not started here. (Nonce, verifier and the next path hold no
	// spaces: two random tokens and an escaped local path.)
	state := c.QueryParam("state")
	held := ""
	if state != "" && len(state) <= 128 {
		held = s.sessions.PopString(ctx, sessAttempt+state)
	}
	parts := strings.SplitN(held, " ", 3)
	if len(parts) != 3 {
		if err := s.signInFailed(c, "state does not match this browser's sign-in"); err != nil {
			return err
		}
		return s.renderError(c, http.StatusBadRequest, "This sign-in did not start here",
			"The sign-in link is stale or was not started from this browser. Please sign in again.",
			"Sign in", "/login")
	}
	a := oidc.Attempt{State: state, Nonce: parts[0], Verifier: parts[1]}
	next := parts[2]
	if e := c.QueryParam("error"); e != "" {
		e = portal.Printable(e, 64)
		if err := s.signInFailed(c, "the provider answered "+e); err != nil {
			return err
		}
		return s.renderError(c, http.StatusUnauthorized, "Sign-in was not completed",
			"The identity provider did not sign you in ("+e+"). You can try again.", "Sign in", "/login")
	}
	id, err := s.oidc.Exchange(ctx, a, c.QueryParam("code"))
	if err != nil {
		if err := s.signInFailed(c, err.Error()); err != nil {
			return err
		}
		if errors.Is(err, oidc.ErrUnavailable) {
			return s.renderError(c, http.StatusServiceUnavailable, "Sign-in is unavailable for now",
				"The identity provider is not answering. Please try again in a minute.", "Try again", "/login")
		}
		return s.renderError(c, http.StatusUnauthorized, "Sign-in could not be verified",
			"The identity provider's answer did not check out, so you are not signed in. Please try again.",
			"Sign in", "/login")
	}
	if !s.cfg.Access.Allowed(id) {
		if err := s.signInFailed(c, "email domain not allowed: "+id.Email); err != nil {
			return err
		}
		return s.renderError(c, http.StatusForbidden, "This portal is not open to your account",
			"Only accounts with a verified email address in an allowed domain may sign in here. "+
				"Sign in with your organisation's account, or ask 2i2c support for access.", "", "")
	}
	u := &portal.User{
		Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified,
		Name: id.Name, Groups: id.Groups, Role: s.cfg.Access.Role(id),
	}
	if err := s.wf.SignIn(ctx, s.actor(c), u); err != nil {
		return err
	}
	// Only now, with the user and the audit row committed, is the browser
	// signed in; a new token, so one fixed before sign-in is worth nothing.
	if err := s.sessions.RenewToken(ctx); err != nil {
		return err
	}
	s.sessions.Put(ctx, sessUserID, u.ID)
	s.log.InfoContext(ctx, "signed in", "user_id", u.ID, "role", string(u.Role))
	return c.Redirect(http.StatusSeeOther, next)
}

// logout ends the session on the server, not just in the browser.
func (s *Server) logout(c echo.Context) error {
	ctx := c.Request().Context()
	if u := currentUser(c); u != nil {
		s.log.InfoContext(ctx, "signed out", "user_id", u.ID)
		if err := s.wf.Record(ctx, s.actor(c), portal.ActionSignedOut, portal.SubjectUser, u.ID, nil); err != nil {
			return err
		}
	}
	if err := s.sessions.Destroy(ctx); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

// signInFailed logs and audits a refused sign-in. The reason names what
// did not check out, never a code or token.
func (s *Server) signInFailed(c echo.Context, reason string) error {
	s.log.WarnContext(c.Request().Context(), "sign-in refused", "reason", reason)
	return s.wf.Record(c.Request().Context(), s.actor(c), portal.ActionSignInFailed, "", 0, map[string]any{"reason": reason})
}

// renderError shows an error page with its own words and, optionally, one
// way forward.
func (s *Server) renderError(c echo.Context, status int, title, msg, action, actionURL string) error {
	return s.render(c, status, "error", page{Title: title, Data: errorPage{
		Title: title, Message: msg, Action: action, ActionURL: actionURL,
	}})
}
