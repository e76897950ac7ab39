package server

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/2i2c-org/credential-portal/internal/applog"
)

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
