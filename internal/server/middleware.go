package server

import (
	"crypto/rand"
	"encoding/hex"
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
