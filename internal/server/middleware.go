package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

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

// safeMethod reports whether HTTP counts a request's method as safe, one
// that changes nothing. The download is a GET that does count and audit;
// crossSiteNavigation guards it.
func safeMethod(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// canonicalOrigin is u's origin as browsers send it in Origin: scheme and
// host in lower case, and the port only when it is not the scheme's own.
func canonicalOrigin(u *url.URL) string {
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

// newCrossOrigin is the standard library's check of Sec-Fetch-Site and
// Origin, trusting the portal's own origin also when a proxy in front
// rewrites the Host header it compares Origin with. It fails if base has no
// usable origin.
func newCrossOrigin(base *url.URL) (*http.CrossOriginProtection, error) {
	cop := http.NewCrossOriginProtection()
	if err := cop.AddTrustedOrigin(canonicalOrigin(base)); err != nil {
		return nil, fmt.Errorf("server: base URL %s: %w", base, err)
	}
	return cop, nil
}

// crossOrigin refuses a state-changing request that a page of another
// origin sent, before anything reads its body: one the browser marks
// Sec-Fetch-Site: same-site (a sibling subdomain, which can also set cookies
// for the portal's host) or cross-site, or whose Origin is not the portal's
// own. The Sec-Fetch-Site part is net/http's CrossOriginProtection; the
// Origin must moreover be the base URL's origin exactly, where the standard
// library accepts any that matches the Host header. A request with neither
// header (a script, a browser older than 2023) passes here, and the form's
// token (csrf) or the API's JSON-only rule stops it if it is forged.
func (s *Server) crossOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if safeMethod(r) {
			return next(c)
		}
		o := r.Header.Get(echo.HeaderOrigin)
		if err := s.cop.Check(r); err != nil || (o != "" && o != s.origin) {
			if isAPI(c) {
				return echo.NewHTTPError(http.StatusForbidden, "Cross-origin requests are refused.")
			}
			return echo.NewHTTPError(http.StatusForbidden, "This form was sent from another site, so the portal refused it. "+
				"Open the portal at "+s.origin+" and submit the form there.")
		}
		return next(c)
	}
}

// newCSRFToken draws a session's CSRF token: 256 random bits.
func newCSRFToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// csrf checks the session's token on every state-changing form, and leaves
// it in the context for the pages' forms. The token lives in the
// server-side session, drawn at sign-in: a page of a sibling subdomain can
// plant cookies for the portal's host, but cannot read or write the
// session, so it cannot know the token a form must carry. (The CSRF
// middleware of echo, gorilla/csrf and justinas/nosurf all keep the token in
// a cookie of its own, the double submit such a page defeats; none keeps it
// in an scs session. Hence these few lines: a random token per session,
// compared in constant time.) Only signed-in sessions hold one, so a visitor
// who is not signed in can post nothing, and no page view makes a session.
// The JSON API is exempt: it takes only application/json from the portal's
// own origin, which no form of another site can send.
func (s *Server) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		want := s.sessions.GetString(c.Request().Context(), sessCSRF)
		c.Set(csrfContextKey, want)
		if safeMethod(c.Request()) || isAPI(c) {
			return next(c)
		}
		got := c.FormValue("csrf")
		if got == "" {
			got = c.Request().Header.Get("X-CSRF-Token")
		}
		if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return echo.NewHTTPError(http.StatusForbidden,
				"This form has expired or did not come from the portal. Go back, reload the page and try again.")
		}
		return next(c)
	}
}

// crossSiteNavigation refuses a GET that changes state (a download is
// counted and audited) when a page of another site set it off: a link on
// another site, or a redirect from one, is a top-level navigation, which
// carries the SameSite=Lax session cookie, and the browser marks it
// Sec-Fetch-Site: cross-site (same-site from a sibling subdomain). The
// portal's own download button (same-origin), an address typed or
// bookmarked (none) and scripts (no header) pass. The refusal points at the
// credential's page, where the button is.
func crossSiteNavigation(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().Header.Get("Sec-Fetch-Site") {
		case "cross-site", "same-site":
			e := &portal.Error{Kind: portal.KindForbidden,
				Message: "Downloads start from the credential's page in the portal, not from a link on another site. " +
					"Open the credential's page and download it there."}
			if id, err := idParam(c, "id"); err == nil {
				e.Link = &portal.Link{Subject: portal.SubjectCredential, ID: id}
			}
			return e
		}
		return next(c)
	}
}

// devBaseHost sends a browser that opened the development portal on another
// name for it (http://127.0.0.1:8080 when the base URL says localhost) to the
// base URL, before a sign-in can start: the identity provider returns to the
// base URL, where a session begun on the other name does not exist. Probes
// and metrics answer on any name. Only `portal dev` does this: behind a
// proxy that rewrites Host, a production portal would redirect for ever.
func (s *Server) devBaseHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		switch {
		case strings.EqualFold(r.Host, s.cfg.BaseURL.Host),
			r.Method != http.MethodGet && r.Method != http.MethodHead,
			r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics":
			return next(c)
		}
		to := *s.cfg.BaseURL
		to.Path, to.RawPath, to.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
		return c.Redirect(http.StatusTemporaryRedirect, to.String())
	}
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

// requestLimit limits new requests and renewals per signed-in person: a
// person makes a handful, a script looping on the form many. Each call makes
// a budget of its own: routes share one so that a script cannot take a
// budget per route (the form, the API, renewals).
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
			return echo.NewHTTPError(http.StatusTooManyRequests, "You have sent many requests and renewals in a short time. Wait a minute and try again.")
		},
	})
}

// requestID gives every request a fresh ID, in the response header and in
// the request's context so that every log line about it carries the ID. An
// ID sent by the client is not trusted: it would let anyone write into the
// logs.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b [12]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		id := hex.EncodeToString(b[:])
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		c.SetRequest(c.Request().WithContext(applog.WithRequestID(c.Request().Context(), id)))
		return next(c)
	}
}

// logRequests writes one line per request. Only the path is logged, never the
// query: the sign-in callback carries the authorization code there.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogMethod: true, LogURIPath: true, LogLatency: true, LogRemoteIP: true,
		LogResponseSize: true, LogRoutePath: true,
		HandleError: true, // let the error handler decide the status before the line is written
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			switch {
			case v.Status >= 500:
				level = slog.LevelError
			case v.URIPath == "/healthz" || v.URIPath == "/readyz":
				level = slog.LevelDebug
			}
			s.log.LogAttrs(c.Request().Context(), level, "request",
				slog.String("method", v.Method),
				slog.String("path", v.URIPath),
				slog.String("route", v.RoutePath),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
				slog.String("remote_ip", v.RemoteIP),
				slog.Int64("bytes", v.ResponseSize),
			)
			return nil
		},
	})(next)
}

// securityHeaders sets the headers every response carries: a strict CSP with
// no inline script or style, no framing, no sniffing, and HSTS behind TLS.
func (s *Server) securityHeaders() echo.MiddlewareFunc {
	hsts := 0
	if s.cfg.BaseURL.Scheme == "https" {
		hsts = 63072000 // two years
	}
	return middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection:      "0",
		ContentTypeNosniff: "nosniff",
		XFrameOptions:      "DENY",
		HSTSMaxAge:         hsts,
		ContentSecurityPolicy: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
			"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		ReferrerPolicy: "same-origin",
	})
}

// readForm reads a form's body before anything looks at its fields, so that
// one over bodyLimit sent without a Content-Length (chunked), which BodyLimit
// can only cut while it is read, is answered 413: read first by the CSRF
// check, which cannot return the error, the cut form would pass for one
// without its token.
func readForm(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !safeMethod(c.Request()) && !isAPI(c) {
			if _, err := c.FormParams(); errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
				return err
			}
		}
		return next(c)
	}
}
