package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// maxAttempts is how many sign-ins a browser may have under way at once.
const maxAttempts = 5

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
	// The value returned is checked, not only the one given: re-encoding
	// can turn "/%2F/host" into "///host". And as a browser reads it:
	// decoded, with tabs and newlines dropped and backslashes read as
	// slashes, it must still be a path on this host.
	out := u.RequestURI()
	decoded, err := url.PathUnescape(out)
	if err != nil {
		return ""
	}
	browser := strings.NewReplacer("\t", "", "\r", "", "\n", "", "\\", "/").Replace(decoded)
	if strings.HasPrefix(browser, "//") || strings.ContainsAny(decoded, "\\\x00") {
		return ""
	}
	return out
}

// landing is where a sign-in ends: the page the person asked for, or else
// their work: the queue for staff, their credentials for customers.
func landing(next string, u *portal.User) string {
	switch {
	case next != "":
		return next
	case u.IsStaff():
		return "/staff/requests"
	}
	return "/dashboard"
}

// login starts a sign-in: the attempt's secrets go into the session, the
// person goes to the provider.
func (s *Server) login(c echo.Context) error {
	next := localPath(c.QueryParam("next"))
	if u := currentUser(c); u != nil {
		return c.Redirect(http.StatusSeeOther, landing(next, u))
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
	if id, err = id.Cleaned(); err != nil {
		if err := s.signInFailed(c, "the provider's email address is not plain text"); err != nil {
			return err
		}
		return s.renderError(c, http.StatusUnauthorized, "Sign-in could not be completed",
			"Your identity provider sent an email address with characters that are not text, so the portal cannot "+
				"sign you in with it. Ask your provider's administrator to correct the address, then sign in again.", "", "")
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
	// A new session token, so one fixed before sign-in is worth nothing, and
	// a new CSRF token with it. The session is stored now, before the
	// sign-in records it as the user's.
	if err := s.sessions.RenewToken(ctx); err != nil {
		return err
	}
	s.sessions.Put(ctx, sessCSRF, newCSRFToken())
	if _, _, err := s.sessions.Commit(ctx); err != nil {
		return err
	}
	if err := s.wf.SignIn(ctx, s.actor(c), u); err != nil {
		return err
	}
	// The person as the provider now says (a role, an email) reaches their
	// other sessions here at once, elsewhere when notified.
	s.authCache.dropUser(u.ID)
	// Only now, with the user, the session's record and the audit row
	// committed, is the browser signed in.
	s.sessions.Put(ctx, sessUserID, u.ID)
	s.log.InfoContext(ctx, "signed in", "user_id", u.ID, "role", string(u.Role))
	return c.Redirect(http.StatusSeeOther, landing(next, u))
}

// logout ends the session on the server, not just in the browser: its row
// and its record as the user's go.
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
