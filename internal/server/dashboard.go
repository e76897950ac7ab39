package server

import (
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// dashboardPage is a customer's overview.
type dashboardPage struct {
	Requests []*portal.Request
	// Current credentials work (and can be downloaded); Past ones were
	// revoked or expired, shown apart so that nothing looks usable that
	// is not.
	Current, Past []*portal.Credential
	Now           time.Time
}

func (s *Server) dashboard(cl call) (page, error) {
	rs, err := s.wf.Requests(cl.ctx, cl.actor, "")
	if err != nil {
		return page{}, err
	}
	cs, err := s.wf.Credentials(cl.ctx, cl.actor)
	if err != nil {
		return page{}, err
	}
	d := dashboardPage{Requests: rs, Now: time.Now()}
	for _, c := range cs {
		if c.State(d.Now) == portal.CredentialActive {
			d.Current = append(d.Current, c)
		} else {
			d.Past = append(d.Past, c)
		}
	}
	return page{Title: "Your credentials", Data: d}, nil
}

func (s *Server) home(call) (page, error) {
	return page{Title: "Prometheus access"}, nil
}
