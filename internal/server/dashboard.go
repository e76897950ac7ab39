package server

import (
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// dashboardPage is a person's overview of their own requests and
// credentials: a page of each, paged apart (requests_cursor,
// credentials_cursor), newest first.
type dashboardPage struct {
	Requests []*portal.Request
	// Current credentials work (and can be downloaded); Past ones were
	// revoked or expired, shown apart so that nothing looks usable that
	// is not. Both are of the page of credentials shown.
	Current, Past []*portal.Credential
	// OlderCredentials is set on a page of credentials after the first.
	OlderCredentials               bool
	RequestsPager, CredentialPager pager
	Now                            time.Time
}

func (s *Server) dashboard(cl call) (page, error) {
	rq, err := cl.pageQuery("requests_cursor")
	if err != nil {
		return page{}, err
	}
	cq, err := cl.pageQuery("credentials_cursor")
	if err != nil {
		return page{}, err
	}
	rs, err := s.wf.Requests(cl.ctx, cl.actor, "", rq)
	if err != nil {
		return page{}, err
	}
	cs, err := s.wf.Credentials(cl.ctx, cl.actor, cq)
	if err != nil {
		return page{}, err
	}
	query := cl.c.QueryParams()
	d := dashboardPage{Requests: rs.Items, Now: time.Now(), OlderCredentials: cq.After != nil,
		RequestsPager:   newPager("Pages of requests", "/dashboard", query, "requests_cursor", rs.Next, false),
		CredentialPager: newPager("Pages of credentials", "/dashboard", query, "credentials_cursor", cs.Next, false)}
	for _, c := range cs.Items {
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
