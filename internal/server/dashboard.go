package server

import (
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// dashboardPage is a customer's overview.
type dashboardPage struct {
	Requests    []*portal.Request
	Credentials []*portal.Credential
	Now         time.Time
}

func (s *Server) dashboard(cl call) (page, error) {
	rs, err := s.wf.Requests(cl.ctx, cl.actor, "")
	if err != nil {
		return page{}, err
	}
	cs, err := s.wf.Credentials(cl.ctx, cl.actor)
	return page{Title: "Your credentials", Data: dashboardPage{Requests: rs, Credentials: cs, Now: time.Now()}}, err
}

func (s *Server) home(call) (page, error) {
	return page{Title: "Prometheus access"}, nil
}
