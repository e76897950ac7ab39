package server

import (
	"html/template"
	"strconv"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// dashboardRequests is how many requests the dashboard's first page of
// requests shows when no limit is asked for. The dashboard is an overview:
// the credentials are what a customer comes for, and an approved request
// repeats its credential's row, so the newest few requests say where things
// stand. Its "Older" link pages on through the rest at the usual page size
// (portal.DefaultPageSize), and ?limit= sets the size of every page, the
// first too, up to portal.MaxPageSize, as on every other list.
const dashboardRequests = 10

// dashboardPage is a person's overview of their own requests and
// credentials: a page of each, paged apart (requests_cursor,
// credentials_cursor), newest first. Each row is worked out here, once,
// and rendered through the row cache (renderRow), and each list is printed
// whole with one action ("" when empty).
type dashboardPage struct {
	Requests template.HTML
	// Current credentials work (and can be downloaded); Past ones were
	// revoked or expired, shown apart so that nothing looks usable that
	// is not. Both are of the page of credentials shown.
	Current, Past template.HTML
	// OlderCredentials is set on a page of credentials after the first.
	OlderCredentials               bool
	RequestsPager, CredentialPager pager
}

// requestRow is one request as the dashboard lists it. Its ID is written
// out once, as a row prints it three times (as a number, each print would
// format it again).
type requestRow struct {
	ID          string
	ClusterName string
	Status      template.HTML // its badge
	Key         template.HTML // the key's fingerprint, as long shows it
	Sent        template.HTML // when it was sent, as when shows it
}

// credentialRow is one credential as the dashboard lists it, its ID
// written out once like a requestRow's.
type credentialRow struct {
	ID                    string
	ClusterName, Username string
	State                 template.HTML // its badge
	// NeverDownloaded rather than Downloaded: {{if not …}} would cost the
	// row a function call.
	NeverDownloaded bool
	Compromised     bool
	// When is, as when shows it, when a current credential expires, or
	// when a past one ended: its revocation, or else its expiry.
	When template.HTML
	// ExpiresIn, on a current credential due for renewal (soon), is
	// roughly how long it has left; "" otherwise.
	ExpiresIn string
	// CSRF is the session's token for the renewal form, on a row that has
	// one (ExpiresIn set) only: other rows are alike for every session.
	CSRF string
}

func newRequestRow(r *portal.Request) requestRow {
	return requestRow{ID: strconv.FormatInt(r.ID, 10), ClusterName: r.ClusterName, Status: badge(string(r.Status)),
		Key: long(r.KeyFingerprint), Sent: when(r.CreatedAt)}
}

func newCredentialRow(c *portal.Credential, state portal.CredentialState, csrf string) credentialRow {
	row := credentialRow{ID: strconv.FormatInt(c.ID, 10), ClusterName: c.ClusterName, Username: c.Username, State: badge(string(state)),
		NeverDownloaded: c.DownloadCount == 0, Compromised: c.Compromised}
	if c.RevokedAt != nil {
		row.When = when(*c.RevokedAt)
	} else {
		row.When = when(c.ExpiresAt)
	}
	if state == portal.CredentialActive && soon(c.ExpiresAt) {
		row.ExpiresIn, row.CSRF = until(c.ExpiresAt), csrf
	}
	return row
}

func (s *Server) dashboard(cl call) (page, error) {
	rq, err := cl.pageQuery("requests_cursor")
	if err != nil {
		return page{}, err
	}
	if rq.After == nil && cl.c.QueryParam("limit") == "" {
		rq.Limit = dashboardRequests
	}
	cq, err := cl.pageQuery("credentials_cursor")
	if err != nil {
		return page{}, err
	}
	rs, err := s.wf.RequestSummaries(cl.ctx, cl.actor, rq)
	if err != nil {
		return page{}, err
	}
	cs, err := s.wf.Credentials(cl.ctx, cl.actor, cq)
	if err != nil {
		return page{}, err
	}
	query := cl.c.QueryParams()
	d := dashboardPage{OlderCredentials: cq.After != nil,
		RequestsPager:   newPager("Pages of requests", "/dashboard", query, "requests_cursor", rs.Next, false),
		CredentialPager: newPager("Pages of credentials", "/dashboard", query, "credentials_cursor", cs.Next, false)}
	requests := make([]requestRow, len(rs.Items))
	for i, r := range rs.Items {
		requests[i] = newRequestRow(r)
	}
	var current, past []credentialRow
	csrf, _ := cl.c.Get(csrfContextKey).(string)
	now := time.Now()
	for _, c := range cs.Items {
		if state := c.State(now); state == portal.CredentialActive {
			current = append(current, newCredentialRow(c, state, csrf))
		} else {
			past = append(past, newCredentialRow(c, state, csrf))
		}
	}
	if d.Requests, err = renderRows(s, "dashboard", "request-row", requests); err != nil {
		return page{}, err
	}
	if d.Current, err = renderRows(s, "dashboard", "credential-row", current); err != nil {
		return page{}, err
	}
	if d.Past, err = renderRows(s, "dashboard", "past-credential-row", past); err != nil {
		return page{}, err
	}
	return page{Title: "Your credentials", Data: d}, nil
}

func (s *Server) home(call) (page, error) {
	return page{Title: "Prometheus access"}, nil
}
