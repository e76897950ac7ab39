package server

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/store"
)

// healthz says the process is up; it touches nothing else.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

// readyz says whether this replica can serve: the database answers and its
// schema is not older than this binary needs. Load balancers take a 503 replica
// out of rotation until it recovers, without a restart.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	reason, detail := "", ""
	if err := s.store.Pool().Ping(ctx); err != nil {
		reason, detail = "database unreachable", err.Error()
	} else if st, err := store.Schema(ctx, s.store.Pool()); err != nil {
		reason, detail = "database schema unknown", err.Error()
	} else if st.Current < st.Latest {
		reason, detail = "database schema is older than this portal", st.Problem()
	}
	// A newer schema keeps a running replica ready: during a rolling upgrade
	// the migration runs first, and the old replicas must serve until the new
	// ones are up. Migrations stay compatible with the previous release for
	// that reason; `portal serve` still refuses to start on a newer schema.
	if reason != "" {
		// The detail may name hosts and roles: it goes to the log, not the client.
		s.log.WarnContext(c.Request().Context(), "not ready", "reason", reason, "detail", detail)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
