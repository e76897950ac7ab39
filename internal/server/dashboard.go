package server

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// dashboardPage is a customer's overview.
type dashboardPage struct {
	Requests    []*portal.Request
	Credentials []*portal.Credential
	Now         time.Time
}

func (s *Server) dashboard(c echo.Context) error {
	ctx, a := c.Request().Context(), s.actor(c)
	rs, err := s.wf.Requests(ctx, a, "")
	if err != nil {
		return err
	}
	cs, err := s.wf.Credentials(ctx, a)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "dashboard", page{Title: "Your credentials",
		Data: dashboardPage{Requests: rs, Credentials: cs, Now: time.Now()}})
}

func (s *Server) home(c echo.Context) error {
	return s.render(c, http.StatusOK, "home", page{Title: "Prometheus access"})
}
