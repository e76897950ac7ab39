package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// forwardedFor sets X-Forwarded-For on every request, as the load
// balancer in front of the portal would: the portal trusts it from a
// loopback peer, so each person has an address of their own, and so a
// budget of their own in the per-address rate limits.
type forwardedFor struct {
	ip   string
	next http.RoundTripper
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return f.next.RoundTrip(r)
}

// person is one signed-in person: a browser with a session cookie that
// follows no redirect by itself, so that each request is timed alone.
type person struct {
	identity
	base   string
	client *http.Client
	rng    *rand.Rand
	// Ids seen on pages (or, before the first page, in the seed).
	requests, credentials []int64
	approvals             []int64       // pending requests in the queue this person takes
	wait                  time.Duration // the time spent on a page before the next
	// body holds the last answer read. It is kept from one request to the
	// next: the load program shares the machine with the portal, and what it
	// spends on each page (a fresh buffer grown to 40 KB, then a copy) would
	// be counted against the portal's pages when they are saturated.
	body bytes.Buffer
}

// signIn signs id in through the provider as a browser would, following
// every redirect: /login, the provider's authorization, the portal's
// callback, the landing page.
func signIn(ctx context.Context, base string, id identity, transport http.RoundTripper, seed uint64) (*person, error) {
	jar, _ := cookiejar.New(nil)
	rt := forwardedFor{ip: id.ip, next: transport}
	browser := &http.Client{Jar: jar, Transport: rt, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/login?login_hint="+url.QueryEscape(id.Email), nil)
	if err != nil {
		return nil, err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign in as %s: %w", id.Email, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	want := "/dashboard"
	if id.staff {
		want = "/staff/requests"
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != want {
		return nil, fmt.Errorf("sign-in as %s ended at %s with %d, want %s", id.Email, resp.Request.URL, resp.StatusCode, want)
	}
	// After the sign-in, do sets X-Forwarded-For on each request it makes,
	// which forwardedFor would do on a copy of every request.
	return &person{
		identity: id, base: base, rng: rand.New(rand.NewPCG(seed, 7)),
		client: &http.Client{Jar: jar, Transport: transport, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// do sends one request, reads the whole answer and records it under route.
// It returns the body of a successful answer, valid until the person's next
// request. A request once sent is seen
// through even if ctx ends meanwhile: the phase's end stops people between
// pages, not in the middle of one, which the portal would log as a failure.
func (p *person) do(ctx context.Context, rec *recorder, route, method, path string, form url.Values) ([]byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), method, p.base+path, body)
	if err != nil {
		return nil, err
	}
	if p.ip != "" {
		req.Header.Set("X-Forwarded-For", p.ip)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", p.base)
	}
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		rec.record(route, path, time.Since(start), 0, 0, err)
		return nil, err
	}
	p.body.Reset()
	_, err = p.body.ReadFrom(resp.Body)
	resp.Body.Close()
	rec.record(route, path, time.Since(start), resp.StatusCode, p.body.Len(), err)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		return nil, fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
	}
	return p.body.Bytes(), nil
}

func (p *person) get(ctx context.Context, rec *recorder, route, path string) ([]byte, error) {
	return p.do(ctx, rec, route, http.MethodGet, path, nil)
}

var (
	requestLink    = regexp.MustCompile(`href="/requests/(\d+)"`)
	credentialLink = regexp.MustCompile(`href="/credentials/(\d+)"`)
	approveLink    = regexp.MustCompile(`href="/staff/requests/(\d+)/approve"`)
	csrfField      = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	lastDayField   = regexp.MustCompile(`name="expires_on" value="([^"]*)"`)
)

// ids returns the numbers a pattern's first group matched in page.
func ids(re *regexp.Regexp, page []byte) []int64 {
	var out []int64
	for _, m := range re.FindAllSubmatch(page, -1) {
		if n, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func (p *person) pick(from []int64) (int64, bool) {
	if len(from) == 0 {
		return 0, false
	}
	return from[p.rng.IntN(len(from))], true
}

// step is one page a person visits; false if there was nothing to visit.
type step func(ctx context.Context, p *person, rec *recorder) bool

// visit is the step that requests path, recorded under route.
func visit(route, path string) step {
	return func(ctx context.Context, p *person, rec *recorder) bool {
		_, _ = p.get(ctx, rec, route, path)
		return true
	}
}

// customerSteps are what a customer does, in turn: the dashboard, then one
// of their own pages, and so on round.
var customerSteps = []step{
	func(ctx context.Context, p *person, rec *recorder) bool {
		// The ids are read off the dashboard until the person knows some:
		// matching them is the load program's own work (about 0.25 ms on a
		// 40 KB page), which would otherwise be counted against the
		// portal's pages when it saturates them.
		if page, err := p.get(ctx, rec, "GET /dashboard", "/dashboard"); err == nil {
			if len(p.requests) == 0 {
				p.requests = ids(requestLink, page)
			}
			if len(p.credentials) == 0 {
				p.credentials = ids(credentialLink, page)
			}
		}
		return true
	},
	func(ctx context.Context, p *person, rec *recorder) bool {
		id, ok := p.pick(p.requests)
		if ok {
			_, _ = p.get(ctx, rec, "GET /requests/:id", fmt.Sprintf("/requests/%d", id))
		}
		return ok
	},
	func(ctx context.Context, p *person, rec *recorder) bool {
		id, ok := p.pick(p.credentials)
		if ok {
			_, _ = p.get(ctx, rec, "GET /credentials/:id", fmt.Sprintf("/credentials/%d", id))
		}
		return ok
	},
	visit("GET /requests/new", "/requests/new"),
	visit("GET /sessions", "/sessions"),
	visit("GET /tokens", "/tokens"),
	visit("GET /api/v1/requests (session)", "/api/v1/requests"),
}

// staffSteps are what a member of staff does, in turn: the queue, a
// request in it, its approval (page, then the form sent), and the other
// staff pages. Each takes the pending requests whose number leaves their
// own remainder, so that two never approve the same one.
func staffSteps(index, staff int, auditQuery string) []step {
	var pending int64 // the request this person is approving, 0 for none
	return []step{
		func(ctx context.Context, p *person, rec *recorder) bool {
			page, err := p.get(ctx, rec, "GET /staff/requests", "/staff/requests")
			if err == nil {
				p.approvals = p.approvals[:0]
				for _, id := range ids(approveLink, page) {
					if int(id%int64(staff)) == index {
						p.approvals = append(p.approvals, id)
					}
				}
			}
			return true
		},
		func(ctx context.Context, p *person, rec *recorder) bool {
			pending = 0
			if len(p.approvals) == 0 {
				return false
			}
			pending = p.approvals[0]
			_, _ = p.get(ctx, rec, "GET /requests/:id (staff)", fmt.Sprintf("/requests/%d", pending))
			return true
		},
		func(ctx context.Context, p *person, rec *recorder) bool {
			if pending == 0 {
				return false
			}
			path := fmt.Sprintf("/staff/requests/%d/approve", pending)
			page, err := p.get(ctx, rec, "GET /staff/requests/:id/approve", path)
			if err != nil {
				pending = 0
				return true
			}
			// Wait as a person would before pressing the button.
			if !p.pause(ctx) {
				return true
			}
			form := url.Values{"note": {""}}
			if m := csrfField.FindSubmatch(page); m != nil {
				form.Set("csrf", html.UnescapeString(string(m[1])))
			}
			if m := lastDayField.FindSubmatch(page); m != nil {
				form.Set("expires_on", html.UnescapeString(string(m[1])))
			}
			_, _ = p.do(ctx, rec, "POST /staff/requests/:id/approve", http.MethodPost, path, form)
			pending = 0
			return true
		},
		visit("GET /staff/revocations", "/staff/revocations"),
		visit("GET /staff/clusters", "/staff/clusters"),
		visit("GET /staff/audit", "/staff/audit"),
		visit("GET /staff/audit?actor&action", "/staff/audit?"+auditQuery),
		visit("GET /staff/people", "/staff/people"),
		visit("GET /staff/notifications", "/staff/notifications"),
	}
}

// auditFilter is the filtered audit page staff look at: a busy customer's
// sign-ins.
func auditFilter(email string) string {
	return url.Values{"actor": {email}, "action": {string(portal.ActionSignedIn)}}.Encode()
}

// pause waits between pages; false if the phase ended meanwhile.
func (p *person) pause(ctx context.Context) bool {
	if p.wait <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// walk runs steps in turn from offset, pausing after each page, until ctx
// ends. People arrive at random within the first pause, not all at once.
// extra, if not empty, is a path visited once first (the test's page that
// does not exist, to show that errors are counted).
func (p *person) walk(ctx context.Context, rec *recorder, steps []step, offset int, extra string) {
	if p.wait > 0 {
		t := time.NewTimer(time.Duration(p.rng.Int64N(int64(p.wait))))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if extra != "" {
		_, _ = p.get(ctx, rec, "GET "+extra, extra)
		if !p.pause(ctx) {
			return
		}
	}
	for i := offset; ctx.Err() == nil; i++ {
		if steps[i%len(steps)](ctx, p, rec) && !p.pause(ctx) {
			return
		}
	}
}
