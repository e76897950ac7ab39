package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/pglocal"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// outageWords is what a page says while the database cannot be reached.
const outageWords = "The portal cannot reach its database. Nothing you sent was lost or half-done; try again in a minute."

// recovery is how soon after the database's return everything answers.
const recovery = 5 * time.Second

// TestDatabaseOutage stops the portal's PostgreSQL under a load of people
// signing in, asking for credentials, approving and downloading, and starts
// it again. While it is away, pages say so in plain words with a 503, the
// API answers 503 in its JSON shape, /readyz fails and /healthz does not;
// nothing answers 500. Within seconds of its return everything answers
// again without a restart, messages queued afterwards are delivered, and
// what was committed is whole: no approval without its credential, audit
// events and messages, and no credential without its approval.
//
// It runs on a PostgreSQL of its own, which it stops and starts, and not in
// parallel: its timings are measured without the other tests' load.
func TestDatabaseOutage(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "outage")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg, err := pglocal.Start(ctx, pglocal.Options{Dir: dir})
	if err != nil {
		t.Fatalf("a private PostgreSQL for the outage: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			pg.Stop(context.Background())
		}
	})
	if err := pg.CreateDatabase(ctx, "portal"); err != nil {
		t.Fatal(err)
	}
	dbURL := pg.URL("portal")
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.ConnectTimeout = 2 * time.Second // as `portal serve` sets it
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := store.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	// The outbox worker as `portal serve` runs it: default pauses (30 s
	// between looks when nothing wakes it), woken by the LISTEN hub. A
	// message queued after the return is delivered only if both recover.
	mail := outbox.NewCapture(100000)
	p := newPortal(t, portalOptions{store: store.New(pool), channels: workflow.Channels{Email: true}})
	p.addCluster("awi-ciroh")
	worker := outbox.NewWorker(p.Store, map[portal.Channel]outbox.Sender{portal.ChannelEmail: mail},
		outbox.Options{Wake: p.Server.notify.MessagesQueued(), Log: slog.New(slog.DiscardHandler)})
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() { defer close(workerDone); worker.Run(workerCtx) }()
	t.Cleanup(func() { stopWorker(); <-workerDone })

	staff := p.signedIn("sam@2i2c.org")
	apiToken, _ := staff.makeToken("outage script", "read")
	syncToken := staff.syncToken("awi-ciroh")
	publication := webconfig.PublicationPath("awi-ciroh")

	seen := &statuses{counts: map[int]int{}}
	sam := newOutageClient(p, seen)
	if st := sam.signIn("sam@2i2c.org"); st != http.StatusOK {
		t.Fatalf("staff sign-in: %d", st)
	}
	watcher := newOutageClient(p, seen)
	if st := watcher.signIn("watcher@example.org"); st != http.StatusOK {
		t.Fatalf("customer sign-in: %d", st)
	}

	// The load: customers who sign in afresh, ask, wait for the decision
	// and download; staff approving what the queue shows.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	t.Cleanup(func() { stopLoad(); load.Wait() }) // also when the test stops early
	var approved, downloaded atomic.Int64
	for g := range 3 {
		load.Go(func() {
			for i := 0; loadCtx.Err() == nil; i++ {
				if newOutageClient(p, seen).askAndDownload(loadCtx, fmt.Sprintf("load-%d-%d@example.org", g, i)) {
					downloaded.Add(1)
				} else {
					time.Sleep(20 * time.Millisecond) // refused: a person would not retry at once either
				}
			}
		})
	}
	load.Go(func() {
		for loadCtx.Err() == nil {
			approved.Add(int64(sam.approveQueue()))
			time.Sleep(20 * time.Millisecond)
		}
	})

	time.Sleep(2 * time.Second)
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	outageStarted := time.Now()

	// While the database is away.
	page := watcher.get("/dashboard")
	if page.status != http.StatusServiceUnavailable || !strings.Contains(page.body, outageWords) {
		t.Errorf("dashboard without the database: %d, want 503 saying %q:\n%s", page.status, outageWords, page.body)
	}
	if ra := page.header.Get("Retry-After"); ra == "" {
		t.Error("the 503 page has no Retry-After")
	}
	if page.took > 3*time.Second {
		t.Errorf("the dashboard took %s to say the database is away", page.took)
	}
	t.Logf("a page without the database answers in %s", page.took.Round(time.Millisecond))
	signIn := newOutageClient(p, seen).get("/login?login_hint=" + url.QueryEscape("new@example.org"))
	if signIn.status != http.StatusServiceUnavailable || !strings.Contains(signIn.body, outageWords) {
		t.Errorf("sign-in without the database: %d, want 503 saying %q:\n%s", signIn.status, outageWords, signIn.body)
	}
	api := watcher.get("/api/v1/requests")
	var apiBody apiError
	if api.status != http.StatusServiceUnavailable || !strings.HasPrefix(api.header.Get("Content-Type"), "application/json") ||
		json.Unmarshal([]byte(api.body), &apiBody) != nil || apiBody.Error != outageWords {
		t.Errorf("API without the database: %d %s %s, want 503 with {\"error\": %q}", api.status, api.header.Get("Content-Type"), api.body, outageWords)
	}
	// Without a session: the token's own lookup is the first to fail.
	script := watcher.bearer("/api/v1/requests", apiToken)
	apiBody = apiError{}
	if script.status != http.StatusServiceUnavailable || json.Unmarshal([]byte(script.body), &apiBody) != nil || apiBody.Error != outageWords {
		t.Errorf("API with a token without the database: %d %s, want 503 with {\"error\": %q}", script.status, script.body, outageWords)
	}
	if r := watcher.bearer(publication, syncToken); r.status != http.StatusServiceUnavailable {
		t.Errorf("the agent's publication without the database: %d %s, want 503", r.status, r.body)
	}
	if r := watcher.get("/readyz"); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz without the database: %d, want 503", r.status)
	}
	if r := watcher.get("/healthz"); r.status != http.StatusOK {
		t.Errorf("/healthz without the database: %d, want 200", r.status)
	}
	time.Sleep(max(0, 3*time.Second-time.Since(outageStarted))) // the load meets the outage a while

	pg, err = pglocal.Start(ctx, pglocal.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stopped = false
	if pg.URL("portal") != dbURL {
		t.Fatalf("PostgreSQL came back at %s, not %s: its folder's path is too long for a socket", pg.URL("portal"), dbURL)
	}
	back := time.Now()
	var waited time.Duration
	for {
		var bad []string
		for _, path := range []string{"/dashboard", "/api/v1/requests", "/readyz", "/staff/requests"} {
			c := watcher
			if path == "/staff/requests" {
				c = sam
			}
			if r := c.get(path); r.status != http.StatusOK {
				bad = append(bad, fmt.Sprintf("%s %d", path, r.status))
			}
		}
		if r := watcher.bearer("/api/v1/requests", apiToken); r.status != http.StatusOK {
			bad = append(bad, fmt.Sprintf("API with a token %d", r.status))
		}
		if r := watcher.bearer(publication, syncToken); r.status != http.StatusOK {
			bad = append(bad, fmt.Sprintf("publication %d", r.status))
		}
		if r := newOutageClient(p, seen).signIn("after@example.org"); r != http.StatusOK {
			bad = append(bad, fmt.Sprintf("sign-in %d", r))
		}
		waited = time.Since(back)
		if len(bad) == 0 {
			break
		}
		if waited > recovery {
			t.Fatalf("%s after the database's return, still: %s", waited.Round(time.Millisecond), strings.Join(bad, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("everything answers again %s after the database's return", waited.Round(time.Millisecond))

	time.Sleep(time.Second) // the load goes on a while on the returned database
	stopLoad()
	load.Wait()

	// A message queued after the return is delivered: the hub's LISTEN
	// connection is back and wakes the worker.
	after := newOutageClient(p, seen)
	after.signIn("afterwards@example.org")
	id, st := after.ask()
	if st != http.StatusOK || id == 0 {
		t.Fatalf("a request after the return: %d", st)
	}
	queued := time.Now()
	link := p.URL + "/staff/requests#request-" + strconv.FormatInt(id, 10)
	for !slices.ContainsFunc(mail.Messages(), func(m *portal.Message) bool { return m.Link == link }) {
		if time.Since(queued) > recovery {
			t.Fatalf("staff were not mailed of request %d, made after the database's return, within %s", id, recovery)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("a message queued after the return is delivered in %s", time.Since(queued).Round(time.Millisecond))

	// An agent's long-poll is woken by a change after the return: the
	// hub listens again.
	current := watcher.bearer(publication, syncToken)
	polled := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, p.URL+publication+"?wait=30s", nil)
		req.Header.Set("Authorization", "Bearer "+syncToken)
		req.Header.Set("If-None-Match", current.header.Get("ETag"))
		var a answer
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			a.status = resp.StatusCode
		}
		polled <- a
	}()
	time.Sleep(200 * time.Millisecond) // the long-poll is waiting
	changed := time.Now()
	if r := sam.do(http.MethodPost, fmt.Sprintf("/staff/requests/%d/approve", id),
		url.Values{"csrf": {csrfField.FindStringSubmatch(sam.get("/staff/requests").body)[1]}, "note": {""}}); r.status != http.StatusOK {
		t.Fatalf("approving request %d after the return: %d", id, r.status)
	}
	select {
	case a := <-polled:
		if a.status != http.StatusOK {
			t.Errorf("the agent's long-poll after a change: %d, want 200", a.status)
		}
		t.Logf("the agent's long-poll answers %s after the change", time.Since(changed).Round(time.Millisecond))
	case <-time.After(recovery):
		t.Errorf("the agent's long-poll was not woken within %s of a change after the database's return", recovery)
	}

	seen.mu.Lock()
	t.Logf("statuses seen: %v; %d approved, %d downloaded", seen.counts, approved.Load(), downloaded.Load())
	for _, f := range seen.failures {
		t.Error(f)
	}
	if seen.counts[http.StatusServiceUnavailable] == 0 {
		t.Error("the load met no 503: the outage was not felt")
	}
	seen.mu.Unlock()
	if approved.Load() == 0 || downloaded.Load() == 0 {
		t.Errorf("%d approvals and %d downloads under the load, want some of each", approved.Load(), downloaded.Load())
	}

	// What was committed is whole.
	for _, check := range []struct{ what, query string }{
		{"approved requests without their credential", `
			SELECT count(*) FROM requests r WHERE r.status = 'approved'
			AND NOT EXISTS (SELECT FROM credentials c WHERE c.request_id = r.id)`},
		{"credentials without an approved request", `
			SELECT count(*) FROM credentials c JOIN requests r ON r.id = c.request_id WHERE r.status <> 'approved'`},
		{"approved requests without a request.approved event", `
			SELECT count(*) FROM requests r WHERE r.status = 'approved' AND NOT EXISTS (
				SELECT FROM audit_events e WHERE e.action = 'request.approved' AND e.subject_type = 'request' AND e.subject_id = r.id)`},
		{"credentials without a credential.issued event", `
			SELECT count(*) FROM credentials c WHERE NOT EXISTS (
				SELECT FROM audit_events e WHERE e.action = 'credential.issued' AND e.subject_type = 'credential' AND e.subject_id = c.id)`},
		{"approved requests whose customer has no message of it in the outbox", `
			SELECT count(*) FROM requests r WHERE r.status = 'approved' AND NOT EXISTS (
				SELECT FROM messages m WHERE m.event = 'request.approved' AND m.link LIKE '%/requests/' || r.id)`},
	} {
		if n := p.count(check.query); n != 0 {
			t.Errorf("%d %s", n, check.what)
		}
	}
	if n := p.count(`SELECT count(*) FROM requests WHERE status = 'approved'`); n == 0 {
		t.Error("no request was approved")
	}
}

// statuses collects what every request of the load was answered, and what
// it should not have been.
type statuses struct {
	mu       sync.Mutex
	counts   map[int]int
	failures []string
}

// note records the answer to method path: anything 5xx but the database's
// 503, or a 503 without its words, is a failure.
func (s *statuses) note(method, path string, r answer, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures = append(s.failures, fmt.Sprintf("%s %s: %v", method, path, err))
		return
	}
	s.counts[r.status]++
	switch {
	case path == "/readyz":
		// A probe: its 503 is JSON naming the reason, for the load balancer.
	case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "":
		s.failures = append(s.failures, fmt.Sprintf("%s %s: 503 without Retry-After", method, path))
	case r.status == http.StatusServiceUnavailable && !strings.Contains(r.body, outageWords):
		s.failures = append(s.failures, fmt.Sprintf("%s %s: 503 without the plain words:\n%s", method, path, r.body))
	case r.status >= 500 && r.status != http.StatusServiceUnavailable:
		s.failures = append(s.failures, fmt.Sprintf("%s %s: %d:\n%s", method, path, r.status, r.body))
	}
}

// outageClient is one person's browser under the load: like the harness's
// browser, but it records every answer rather than stopping the test, as
// it runs in goroutines of its own. Each comes from an address of its own
// (through the loopback proxy the portal trusts), so that the sign-in rate
// limit, which is per address, is not what the load meets.
type outageClient struct {
	p      *testPortal
	client *http.Client
	seen   *statuses
	ip     string
}

var clientAddresses atomic.Int64

func newOutageClient(p *testPortal, seen *statuses) *outageClient {
	jar, _ := cookiejar.New(nil)
	n := clientAddresses.Add(1)
	return &outageClient{p: p, seen: seen, client: &http.Client{Jar: jar, Timeout: 10 * time.Second},
		ip: fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)}
}

// answer is a response as the load sees it.
type answer struct {
	status int
	header http.Header
	body   string
	url    *url.URL
	took   time.Duration
}

func (c *outageClient) do(method, path string, form url.Values) answer {
	return c.doWith(method, path, form, "")
}

// bearer sends GET path with a bearer token, as a script or the agent does.
func (c *outageClient) bearer(path, token string) answer {
	return c.doWith(http.MethodGet, path, nil, token)
}

func (c *outageClient) doWith(method, path string, form url.Values, token string) answer {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.p.URL+path, body)
	if err != nil {
		panic(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-Forwarded-For", c.ip)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := c.client.Do(req)
	var a answer
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a = answer{status: resp.StatusCode, header: resp.Header, body: string(b), url: resp.Request.URL, took: time.Since(start)}
	}
	c.seen.note(method, path, a, err)
	return a
}

func (c *outageClient) get(path string) answer { return c.do(http.MethodGet, path, nil) }

// signIn signs in as email through the development provider and returns
// the status of the page it lands on.
func (c *outageClient) signIn(email string) int {
	return c.get("/login?login_hint=" + url.QueryEscape(email)).status
}

// ask sends the request form with a new key and returns the new request's
// ID, 0 when the form was refused.
func (c *outageClient) ask() (int64, int) {
	form := c.get("/requests/new")
	m := csrfField.FindStringSubmatch(form.body)
	if form.status != http.StatusOK || m == nil {
		return 0, form.status
	}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		panic(err)
	}
	r := c.do(http.MethodPost, "/requests", url.Values{"csrf": {m[1]}, "cluster": {"awi-ciroh"},
		"public_key": {key.Recipient().String()}, "justification": {"Dashboards for the research team."}})
	if r.status != http.StatusOK || r.url == nil {
		return 0, r.status
	}
	if m := requestPath.FindStringSubmatch(r.url.Path); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		return id, r.status
	}
	return 0, r.status
}

var downloadHref = regexp.MustCompile(`href="(/credentials/\d+/credentials\.txt\.age)"`)

// askAndDownload signs in as email, asks for a credential, waits a while
// for staff to approve it and downloads it. It reports whether it did.
func (c *outageClient) askAndDownload(ctx context.Context, email string) bool {
	if c.signIn(email) != http.StatusOK {
		return false
	}
	id, _ := c.ask()
	if id == 0 {
		return false
	}
	for range 40 {
		if ctx.Err() != nil {
			return false
		}
		page := c.get(fmt.Sprintf("/requests/%d", id))
		if m := downloadHref.FindStringSubmatch(page.body); m != nil {
			return c.get(m[1]).status == http.StatusOK
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

var queueEntry = regexp.MustCompile(`id="request-(\d+)"`)

// approveQueue approves every request the staff queue shows and returns
// how many were approved.
func (c *outageClient) approveQueue() int {
	q := c.get("/staff/requests")
	m := csrfField.FindStringSubmatch(q.body)
	if q.status != http.StatusOK || m == nil {
		return 0
	}
	ids := map[string]bool{}
	for _, e := range queueEntry.FindAllStringSubmatch(q.body, -1) {
		ids[e[1]] = true
	}
	n := 0
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if r := c.do(http.MethodPost, "/staff/requests/"+id+"/approve", url.Values{"csrf": {m[1]}, "note": {""}}); r.status == http.StatusOK {
			n++
		}
	}
	return n
}
