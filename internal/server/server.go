// Package server is the portal's HTTP face: routes, handlers, middleware,
// templates and the one error handler. It is the only package that imports
// echo.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/2i2c-org/credential-portal/internal/notify"
	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// actor is who makes the request, for authorization and the audit log.
func (s *Server) actor(c echo.Context) workflow.Actor {
	// Both are kept in the audit log: cut to a sane size and to printable
	// text, whatever a client sends.
	return workflow.Actor{User: currentUser(c), IP: portal.Printable(c.RealIP(), 64),
		UserAgent: portal.Printable(c.Request().UserAgent(), 512), SessionKey: s.sessionKey(c), Token: currentToken(c)}
}

// idParam reads a numeric path parameter; anything else names nothing.
func idParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%s %q: %w", name, c.Param(name), portal.ErrNotFound)
	}
	return id, nil
}

// setFlash leaves a message for the next page the browser shows.
func (s *Server) setFlash(c echo.Context, kind, msg string) {
	s.sessions.Put(c.Request().Context(), sessFlashKind, kind)
	s.sessions.Put(c.Request().Context(), sessFlash, msg)
}

// Config is what the HTTP layer needs to know about its deployment.
type Config struct {
	// BaseURL is the address people reach the portal at; it decides secure
	// cookies, HSTS and the OIDC redirect URL.
	BaseURL *url.URL
	// Dev marks the embedded development mode: a banner on every page.
	Dev bool
	// Version is shown in /healthz.
	Version string
	// Sessions sets how long a sign-in lasts.
	Sessions SessionConfig
	// Access decides who may sign in and who is staff.
	Access portal.AccessPolicy
	// DevIdentityProvider, when set, is served under /oidc/: the development
	// sign-in of `portal dev`, never set by `portal serve`.
	DevIdentityProvider http.Handler
	// DevMail, when set, holds the messages development mode captured
	// instead of sending, shown at /dev/mail; never set by `portal serve`.
	// Messages is called from concurrent requests.
	DevMail interface{ Messages() []*portal.Message }
	// Collectors are other parts' metrics (the outbox worker's), served
	// at /metrics with the server's own.
	Collectors []prometheus.Collector
	// SeparateMetrics leaves /metrics off the main handler: it is served
	// by MetricsHandler on a listener of its own (PORTAL_METRICS_LISTEN).
	SeparateMetrics bool
}

// Server handles the portal's HTTP requests.
type Server struct {
	cfg      Config
	store    *store.Store
	wf       *workflow.Service
	oidc     *oidc.Client
	notify   *notify.Hub
	log      *slog.Logger
	echo     *echo.Echo
	sessions *scs.SessionManager
	// authCache keeps the sessions this replica opened and the API tokens
	// it checked, while the hub listens for their changes.
	authCache *authCache
	// openClusters keeps the clusters the request form offers.
	openClusters *clusterCache
	pages        *pages
	rowCache     *rowCache // rows of lists as rendered, to print again
	assets       *assets
	metrics      *metrics
	refusals     *middleware.RateLimiterMemoryStore // refusals audited per person, or per address when not signed in
	cop          *http.CrossOriginProtection        // Sec-Fetch-Site and Origin of state-changing requests
	origin       string                             // the portal's origin, as browsers send it in Origin
	// apiScopes is the scope a token needs for each API route.
	apiScopes  map[string]portal.Scope
	tokenCalls *middleware.RateLimiterMemoryStore // calls per token

	drainOnce sync.Once
	draining  chan struct{} // closed when shutdown begins: long-polls answer at once
}

// New builds a Server with every route registered: st holds the sessions
// and users, wf carries out the actions, signIn signs people in, hub wakes
// the agents' long-polls. It fails if a template does not parse or a
// collector of cfg's cannot be registered.
func New(cfg Config, st *store.Store, wf *workflow.Service, signIn *oidc.Client, hub *notify.Hub, log *slog.Logger) (*Server, error) {
	if cfg.BaseURL == nil {
		return nil, errors.New("server: no base URL")
	}
	if cfg.Sessions.Lifetime <= 0 || cfg.Sessions.IdleTimeout <= 0 {
		return nil, errors.New("server: session lifetime and idle timeout must be positive")
	}
	s := &Server{cfg: cfg, store: st, wf: wf, oidc: signIn, notify: hub, log: log, draining: make(chan struct{}),
		origin: canonicalOrigin(cfg.BaseURL), apiScopes: map[string]portal.Scope{}, tokenCalls: tokenCallLimit()}
	s.authCache, s.openClusters = newAuthCache(), new(clusterCache)
	if hub != nil {
		hub.Watch(notify.SessionsChannel, s.authCache)
		hub.Watch(notify.ClustersChannel, s.openClusters)
	}
	s.sessions = s.newSessions(cfg.Sessions)
	var err error
	if s.cop, err = newCrossOrigin(cfg.BaseURL); err != nil {
		return nil, err
	}
	if s.metrics, err = newMetrics(st, cfg.Collectors...); err != nil {
		return nil, err
	}
	s.refusals = middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
		Rate: rate.Every(6 * time.Second), Burst: 10, ExpiresIn: 10 * time.Minute,
	})
	if s.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	if s.pages, err = parsePages(s.assets); err != nil {
		return nil, err
	}
	s.rowCache = newRowCache(renderedRows)
	s.echo = echo.New()
	s.echo.HideBanner = true
	s.echo.HidePort = true
	s.echo.HTTPErrorHandler = s.handleError
	// Behind Kubernetes' ingress the client address is in X-Forwarded-For;
	// only proxies on private and loopback addresses are trusted to set it.
	s.echo.IPExtractor = echo.ExtractIPFromXFFHeader()
	s.routes()
	return s, nil
}

// RedirectURL is where the identity provider sends people back after sign-in.
func RedirectURL(base *url.URL) string {
	return base.JoinPath("/auth/callback").String()
}

// Drain tells long-polls to answer now: the server is shutting down, and an
// agent does better re-asking another replica than waiting for this one.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Serve answers requests on ln until ctx is done, then stops accepting new
// connections and lets in-flight requests finish for up to grace before it
// returns. It returns nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	// Requests outlive ctx (SIGTERM) for the grace period, then are cut:
	// their context ends, so a long export or a database call stops and
	// returns its connection to the pool.
	base, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10, // cookies and a user agent, not megabytes of them
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	if d, ok := h.(interface{ Drain() }); ok {
		srv.RegisterOnShutdown(d.Drain)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "grace", grace.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		cut()
		srv.Close()
		<-errc
		return fmt.Errorf("shutdown: requests still running after %s were cut: %w", grace, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
