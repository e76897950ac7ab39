package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/logtest"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

const syncToken = "s3cr3t-sync-token-value"

// standIn stands in for the portal's web-config endpoint of one cluster,
// c1, with its ETag, 304 and long-poll behaviour. The portal itself is
// written at the same time as the agent; this keeps to the contract.
type standIn struct {
	mu      sync.Mutex
	users   webconfig.Users
	expires webconfig.Expiries // written as the portal writes them
	mode    string             // "yaml", or one of the broken answers in render
	padding int                // bytes of comment after the users
	version int
	changed chan struct{}        // closed at the next change
	tokens  map[string]bool      // the sync tokens accepted
	seen    map[string]time.Time // when each token was first accepted
	srv     *httptest.Server
}

func newStandIn(t *testing.T, users webconfig.Users) *standIn {
	t.Helper()
	p := &standIn{users: users, mode: "yaml", version: 1, changed: make(chan struct{}),
		tokens: map[string]bool{syncToken: true}, seen: map[string]time.Time{}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// stop takes the portal away as a restart does: held requests are cut and
// new connections refused.
func (p *standIn) stop() {
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// restart serves again on the address stop left, as a restarted portal
// does, and returns when it accepts connections.
func (p *standIn) restart(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("listen again on the portal's address: %v", err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	p.srv = srv
}

// rotate makes tokens the only ones accepted. With wake, held requests
// wake, and one whose token is no longer accepted ends with 401, as the
// portal ends it; without, they go on being held.
func (p *standIn) rotate(wake bool, tokens ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens = map[string]bool{}
	for _, tok := range tokens {
		p.tokens[tok] = true
	}
	if wake {
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// accepts reports whether the request's token is accepted, noting when a
// token was first accepted.
func (p *standIn) accepts(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ok || !p.tokens[tok] {
		return false
	}
	if _, ok := p.seen[tok]; !ok {
		p.seen[tok] = time.Now()
	}
	return true
}

// firstSeen is when tok was first accepted; zero if it was not yet.
func (p *standIn) firstSeen(tok string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[tok]
}

// pad adds n bytes of comment to every answer.
func (p *standIn) pad(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.padding = n
	p.version++
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *standIn) url(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(p.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (p *standIn) set(users webconfig.Users, mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users, p.mode = users, mode
	p.version++
	close(p.changed)
	p.changed = make(chan struct{})
}

// setExpires sets the users' expiries, as the portal publishes them, without
// changing the set's version: a portal that does not drop them itself.
func (p *standIn) setExpires(expires webconfig.Expiries) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expires = expires
}

func (p *standIn) state() (etag string, changed chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf(`"v%d"`, p.version), p.changed
}

func (p *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.accepts(r) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.URL.Path != webconfig.PublicationPath("c1") {
		http.NotFound(w, r)
		return
	}
	if p.unavailable(w) {
		return
	}
	etag, changed := p.state()
	if r.Header.Get("If-None-Match") == etag {
		if wait, err := time.ParseDuration(r.URL.Query().Get("wait")); err == nil {
			select {
			case <-changed:
			case <-time.After(min(wait, webconfig.MaxWait)):
			case <-r.Context().Done():
				return
			}
		}
		if !p.accepts(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if p.unavailable(w) {
			return
		}
		if etag, _ = p.state(); r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	p.mu.Lock()
	body, ctype := p.render()
	p.mu.Unlock()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("ETag", etag)
	w.Write([]byte(body))
}

// unavailable answers as the portal does while its database is down, in
// mode "unavailable": 503, Retry-After and the error page. It reports
// whether it did.
func (p *standIn) unavailable(w http.ResponseWriter) bool {
	p.mu.Lock()
	down := p.mode == "unavailable"
	p.mu.Unlock()
	if down {
		w.Header().Set("Retry-After", "60")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("<!doctype html>\n<h1>The portal cannot do that right now</h1>\n" +
			"<p>The portal cannot reach its database. Nothing you sent was lost or half-done; try again in a minute.</p>\n"))
	}
	return down
}

func (p *standIn) render() (body, contentType string) {
	var b strings.Builder
	b.WriteString("basic_auth_users:")
	if len(p.users) == 0 {
		b.WriteString(" {}")
	}
	b.WriteString("\n")
	for _, name := range slices.Sorted(maps.Keys(p.users)) {
		fmt.Fprintf(&b, "  %s: %s # from portal", name, p.users[name])
		if at, ok := p.expires[name]; ok {
			b.WriteString(", expires " + at.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	for n := p.padding; n > 0; n -= 64 {
		b.WriteString("#" + strings.Repeat("x", max(min(n, 64)-2, 0)) + "\n")
	}
	switch full := b.String(); p.mode {
	case "html":
		return "<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n", "text/html"
	case "truncated-hash":
		return full[:len(full)-20], "application/yaml"
	case "truncated-yaml":
		return "basic_auth_users:\n  c-alice: [\"$2a$04$", "application/yaml"
	case "extra-key":
		return full + "tls_server_config:\n  cert_file: /etc/shadow\n", "application/yaml"
	case "second-document":
		return full + "---\nbasic_auth_users:\n  mallory: " + p.users["c-alice"] + "\n", "application/yaml"
	default:
		return full, "application/yaml"
	}
}

// startPrometheus serves a trivial handler behind exporter-toolkit's web
// package, reading webConfig on every request as Prometheus does, and
// returns its URL.
func startPrometheus(t *testing.T, webConfig string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "prometheus")
	})}
	systemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{ln.Addr().String()}, WebSystemdSocket: &systemd, WebConfigFile: &webConfig}
	done := make(chan error, 1)
	go func() { done <- web.Serve(ln, srv, flags, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// status is the status Prometheus at u answers user with password.
func status(t *testing.T, u, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u+"/api/v1/query", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func wantStatus(t *testing.T, u, user, password string, want int) {
	t.Helper()
	if got := status(t, u, user, password); got != want {
		t.Errorf("%s with password %q: status %d, want %d", user, password, got, want)
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric scrapes the agent's /metrics for one unlabelled series.
func metric(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in:\n%s", name, rec.Body.String())
	return 0
}

func healthz(a *Agent) int {
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	return rec.Code
}

type fixture struct {
	dir, base, token, out string
	cfg                   Config
	logs                  *logtest.Buffer
}

func newFixture(t *testing.T, portal *url.URL, base string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, base: filepath.Join(dir, "base.yml"), token: filepath.Join(dir, "token"),
		out: filepath.Join(dir, "out", "web-config.yml"), logs: &logtest.Buffer{}}
	if err := os.Mkdir(filepath.Dir(f.out), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.base, base)
	writeFile(t, f.token, "  "+syncToken+"\n")
	f.cfg = Config{PortalURL: portal, Cluster: "c1", TokenFile: f.token, BasePath: f.base, OutPath: f.out,
		Wait: time.Second, Interval: 20 * time.Millisecond}
	return f
}

// run starts the agent and stops it when the test ends, checking that it
// stops promptly and cleanly.
func (f *fixture) run(t *testing.T) *Agent {
	t.Helper()
	a, err := New(f.cfg, applog.New(f.logs, slog.LevelDebug))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Error("Run did not return within 3s of cancel")
		}
		if strings.Contains(f.logs.String(), syncToken) {
			t.Error("the sync token appears in the logs")
		}
	})
	return a
}

// keepsFileThroughFailure has breakPortal break the portal, waits for the
// agent a to count the failed round, and checks that the file is as before.
func (f *fixture) keepsFileThroughFailure(t *testing.T, a *Agent, breakPortal func()) {
	t.Helper()
	before, failures := readFile(t, f.out), metric(t, a, "portal_agent_sync_failures_total")
	breakPortal()
	eventually(t, 5*time.Second, "a failure is counted", func() bool {
		return metric(t, a, "portal_agent_sync_failures_total") > failures
	})
	if after := readFile(t, f.out); after != before {
		t.Errorf("the file changed:\n%s", after)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAgentKeepsPrometheusInStep runs the agent against the stand-in portal
// and a real exporter-toolkit server reading the file it writes.
func TestAgentKeepsPrometheusInStep(t *testing.T) {
	internal, alice, bob, carol := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw"), hashOf(t, "carol-pw")
	portal := newStandIn(t, webconfig.Users{"c-alice": alice, "c-bob": bob})
	f := newFixture(t, portal.url(t),
		"http_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  internal: "+internal+"\n")
	a := f.run(t)

	eventually(t, 2*time.Second, "the portal's users are written", func() bool {
		b, _ := os.ReadFile(f.out)
		return bytes.Contains(b, []byte("c-alice")) && bytes.Contains(b, []byte("c-bob"))
	})
	prom := startPrometheus(t, f.out)
	wantStatus(t, prom, "internal", "internal-pw", http.StatusOK)
	wantStatus(t, prom, "c-alice", "alice-pw", http.StatusOK)
	wantStatus(t, prom, "c-bob", "bob-pw", http.StatusOK)
	wantStatus(t, prom, "c-alice", "bob-pw", http.StatusUnauthorized)
	wantStatus(t, prom, "c-nobody", "alice-pw", http.StatusUnauthorized)
	resp, err := http.Get(prom)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Frame-Options"); got != "deny" {
		t.Errorf("X-Frame-Options %q: the base's HTTP settings did not survive the merge", got)
	}
	if code := healthz(a); code != http.StatusOK {
		t.Errorf("/healthz %d after writing, want 200", code)
	}
	if fi, err := os.Stat(f.out); err != nil || fi.Mode().Perm() != FileMode {
		t.Errorf("out file mode %v (%v), want %v", fi.Mode().Perm(), err, FileMode)
	}

	t.Run("a dropped user is refused within 2s", func(t *testing.T) {
		portal.set(webconfig.Users{"c-alice": alice}, "yaml")
		dropped := time.Now()
		eventually(t, 2*time.Second, "c-bob refused", func() bool {
			return status(t, prom, "c-bob", "bob-pw") == http.StatusUnauthorized
		})
		t.Logf("c-bob refused %s after the portal dropped it", time.Since(dropped).Round(time.Millisecond))
		wantStatus(t, prom, "internal", "internal-pw", http.StatusOK)
		wantStatus(t, prom, "c-alice", "alice-pw", http.StatusOK)
		if got := metric(t, a, "portal_agent_users"); got != 1 {
			t.Errorf("portal_agent_users %v, want 1", got)
		}
		// The base alone at start, the portal's first set, the drop.
		if got := metric(t, a, "portal_agent_writes_total"); got != 3 {
			t.Errorf("portal_agent_writes_total %v, want 3", got)
		}
		if metric(t, a, "portal_agent_last_success_timestamp_seconds") < float64(dropped.Unix()) {
			t.Error("portal_agent_last_success_timestamp_seconds not updated")
		}
	})

	// "unavailable" is the portal's database down: 503 until it is back;
	// the next subtest then sees the users issued meanwhile appear.
	for _, mode := range []string{"unavailable", "html", "truncated-hash", "truncated-yaml", "extra-key", "second-document"} {
		t.Run("the file survives a portal answering "+mode, func(t *testing.T) {
			f.keepsFileThroughFailure(t, a, func() { portal.set(webconfig.Users{"c-alice": alice, "c-carol": carol}, mode) })
			wantStatus(t, prom, "internal", "internal-pw", http.StatusOK)
			wantStatus(t, prom, "c-alice", "alice-pw", http.StatusOK)
			wantStatus(t, prom, "c-carol", "carol-pw", http.StatusUnauthorized)

			// The agent retries the bad answer with a growing pause; let it
			// succeed once, so the next case does not start deep in back-off.
			since := metric(t, a, "portal_agent_last_success_timestamp_seconds")
			portal.set(webconfig.Users{"c-alice": alice}, "yaml")
			eventually(t, 5*time.Second, "a success after the portal mends", func() bool {
				return metric(t, a, "portal_agent_last_success_timestamp_seconds") > since
			})
		})
	}

	t.Run("the agent recovers when the portal does", func(t *testing.T) {
		portal.set(webconfig.Users{"c-alice": alice, "c-carol": carol}, "yaml")
		eventually(t, 5*time.Second, "c-carol accepted", func() bool {
			return status(t, prom, "c-carol", "carol-pw") == http.StatusOK
		})
	})

	t.Run("the file survives the portal going away", func(t *testing.T) {
		f.keepsFileThroughFailure(t, a, portal.srv.Close)
		wantStatus(t, prom, "internal", "internal-pw", http.StatusOK)
		wantStatus(t, prom, "c-alice", "alice-pw", http.StatusOK)
		wantStatus(t, prom, "c-carol", "carol-pw", http.StatusOK)
		if code := healthz(a); code != http.StatusOK {
			t.Errorf("/healthz %d, want 200: the file is still good", code)
		}
	})

	entries, err := os.ReadDir(filepath.Dir(f.out))
	if err != nil || len(entries) != 1 {
		t.Errorf("the out folder holds %v (%v), want the web config alone", entries, err)
	}
}

// TestAgentToken checks the token is trimmed, sent, and re-read at each
// request, and that a refused token counts as a failure.
func TestAgentToken(t *testing.T) {
	internal, alice := hashOf(t, "internal-pw"), hashOf(t, "alice-pw")
	portal := newStandIn(t, webconfig.Users{"c-alice": alice})
	f := newFixture(t, portal.url(t), "basic_auth_users:\n  internal: "+internal+"\n")
	writeFile(t, f.token, "an-old-token\n")
	a := f.run(t)

	eventually(t, 2*time.Second, "a refused token is counted", func() bool {
		return metric(t, a, "portal_agent_sync_failures_total") > 0
	})
	if code := healthz(a); code != http.StatusOK {
		t.Errorf("/healthz %d, want 200: the base is written without the portal", code)
	}
	if !strings.Contains(f.logs.String(), "refused the sync token (401)") {
		t.Errorf("no 401 warning in the logs:\n%s", f.logs)
	}
	if strings.Contains(f.logs.String(), "an-old-token") {
		t.Error("the old token appears in the logs")
	}
	writeFile(t, f.token, syncToken+"\n")
	eventually(t, 5*time.Second, "the rotated token is used", func() bool {
		b, _ := os.ReadFile(f.out)
		return bytes.Contains(b, []byte("c-alice"))
	})
}

func TestAgentUnknownCluster(t *testing.T) {
	portal := newStandIn(t, webconfig.Users{})
	f := newFixture(t, portal.url(t), "basic_auth_users:\n  internal: "+hashOf(t, "internal-pw")+"\n")
	f.cfg.Cluster = "c2"
	a := f.run(t)
	eventually(t, 2*time.Second, "a 404 is counted", func() bool {
		return metric(t, a, "portal_agent_sync_failures_total") > 0
	})
	if !strings.Contains(f.logs.String(), `does not know cluster \"c2\" (404)`) {
		t.Errorf("no 404 warning in the logs:\n%s", f.logs)
	}
}

// deadPortal is the URL of a server that is no longer there.
func deadPortal(t *testing.T) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	return u
}

func TestAgentStart(t *testing.T) {
	oldInternal, newInternal, alice := hashOf(t, "old-internal-pw"), hashOf(t, "internal-pw"), hashOf(t, "alice-pw")
	newBase := "basic_auth_users:\n  internal: " + newInternal + "\n"
	lastGood := func(t *testing.T) string {
		old, err := webconfig.ParseWebConfig([]byte("basic_auth_users:\n  internal: " + oldInternal + "\n  retired: " + oldInternal + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := webconfig.Merge(old, webconfig.Users{"c-alice": alice}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(m.Doc)
	}
	baseAlone := func(t *testing.T) string {
		b, err := webconfig.ParseWebConfig([]byte(newBase))
		if err != nil {
			t.Fatal(err)
		}
		m, err := webconfig.Merge(b, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(m.Doc)
	}
	tests := []struct {
		name       string
		out        func(t *testing.T) string // "" for no file
		wantUsers  webconfig.Users
		wantWrites float64
		wantPortal float64
	}{
		{name: "no file: the base alone", out: func(*testing.T) string { return "" },
			wantUsers: webconfig.Users{"internal": newInternal}, wantWrites: 1},
		{name: "last good file: the new base and its portal users", out: lastGood,
			wantUsers: webconfig.Users{"internal": newInternal, "c-alice": alice}, wantWrites: 1, wantPortal: 1},
		{name: "invalid file: the base alone", out: func(*testing.T) string { return "basic_auth_users: [" },
			wantUsers: webconfig.Users{"internal": newInternal}, wantWrites: 1},
		{name: "file not written by the agent: the base alone",
			out: func(*testing.T) string {
				return "basic_auth_users:\n  internal: " + oldInternal + "\n  c-alice: " + alice + "\n"
			},
			wantUsers: webconfig.Users{"internal": newInternal}, wantWrites: 1},
		{name: "file already right: no write", out: baseAlone,
			wantUsers: webconfig.Users{"internal": newInternal}, wantWrites: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, deadPortal(t), newBase)
			if out := tt.out(t); out != "" {
				writeFile(t, f.out, out)
			}
			a := f.run(t)
			eventually(t, 2*time.Second, "/healthz answers 200", func() bool { return healthz(a) == http.StatusOK })
			parsed, err := webconfig.ParseWebConfig([]byte(readFile(t, f.out)))
			if err != nil {
				t.Fatal(err)
			}
			got := parsed.Users()
			if len(got) != len(tt.wantUsers) {
				t.Errorf("users %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.wantUsers)))
			}
			for name, h := range tt.wantUsers {
				if got[name] != h {
					t.Errorf("user %s: not the expected hash", name)
				}
			}
			if got := metric(t, a, "portal_agent_writes_total"); got != tt.wantWrites {
				t.Errorf("portal_agent_writes_total %v, want %v", got, tt.wantWrites)
			}
			if got := metric(t, a, "portal_agent_users"); got != tt.wantPortal {
				t.Errorf("portal_agent_users %v, want %v", got, tt.wantPortal)
			}
			if got := metric(t, a, "portal_agent_last_success_timestamp_seconds"); got != 0 {
				t.Errorf("portal_agent_last_success_timestamp_seconds %v, want 0: the portal was never reached", got)
			}
		})
	}
}

// TestAgentDropsExpiredUsers: a portal user leaves the file when its expiry
// passes, with the portal down (the agent pausing between failed rounds) or
// holding a long-poll without answering (the agent waiting on a request),
// while the base user, a portal user not yet expired and one with no known
// expiry stay.
func TestAgentDropsExpiredUsers(t *testing.T) {
	for _, portalState := range []string{"down", "holding"} {
		t.Run("portal "+portalState, func(t *testing.T) {
			t.Parallel()
			internal, alice, bob, carol := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw"), hashOf(t, "carol-pw")
			// Whole seconds, as the portal publishes them; 2 to 3 s away.
			soon := time.Now().Add(3 * time.Second).Truncate(time.Second)
			portal := newStandIn(t, webconfig.Users{"c-alice": alice, "c-bob": bob, "c-carol": carol})
			portal.setExpires(webconfig.Expiries{"c-alice": soon, "c-bob": time.Now().Add(time.Hour)})
			f := newFixture(t, portal.url(t), "basic_auth_users:\n  internal: "+internal+"\n")
			if portalState == "holding" {
				f.cfg.Wait = webconfig.MaxWait
			}
			a := f.run(t)
			eventually(t, 2*time.Second, "the portal's users are written", func() bool {
				b, _ := os.ReadFile(f.out)
				return bytes.Contains(b, []byte("c-carol"))
			})
			if doc := readFile(t, f.out); !strings.Contains(doc, "c-alice: "+alice+" # from portal, expires "+soon.UTC().Format(time.RFC3339)+"\n") ||
				!strings.Contains(doc, "c-carol: "+carol+" # from portal\n") {
				t.Errorf("the file does not mark the users with their expiry:\n%s", doc)
			}
			prom := startPrometheus(t, f.out)
			wantStatus(t, prom, "c-alice", "alice-pw", http.StatusOK)

			switch portalState {
			case "down":
				portal.srv.CloseClientConnections()
				portal.srv.Close()
				eventually(t, 2*time.Second, "a failure is counted", func() bool {
					return metric(t, a, "portal_agent_sync_failures_total") > 0
				})
			case "holding":
				time.Sleep(100 * time.Millisecond) // the agent is now in a long-poll
			}
			if time.Now().After(soon) {
				t.Fatal("c-alice expired before the portal went away: the test is too slow for its timing")
			}
			// The file, not Prometheus, is polled against the clock: a refusal
			// costs exporter-toolkit a bcrypt run, slow under the race detector.
			eventually(t, time.Until(soon)+time.Second, "c-alice leaves the file within 1 s of its expiry", func() bool {
				b, _ := os.ReadFile(f.out)
				return !bytes.Contains(b, []byte("c-alice"))
			})
			t.Logf("c-alice left the file %s after its expiry", time.Since(soon).Round(time.Millisecond))
			wantStatus(t, prom, "c-alice", "alice-pw", http.StatusUnauthorized)
			wantStatus(t, prom, "internal", "internal-pw", http.StatusOK)
			wantStatus(t, prom, "c-bob", "bob-pw", http.StatusOK)
			wantStatus(t, prom, "c-carol", "carol-pw", http.StatusOK)
			if got := metric(t, a, "portal_agent_users"); got != 2 {
				t.Errorf("portal_agent_users %v, want 2", got)
			}
			if logs := f.logs.String(); !strings.Contains(logs, "credential expired; removed") || !strings.Contains(logs, "c-alice") {
				t.Errorf("no log line for the expiry:\n%s", logs)
			}
			if portalState == "holding" && metric(t, a, "portal_agent_sync_failures_total") != 0 {
				t.Error("a failure was counted while the portal held the request")
			}
		})
	}
}

// TestAgentRestartDropsExpiredCarriedUsers: a restarted agent that cannot
// reach the portal keeps the last good file's portal users but those already
// expired, and still drops the others when their time comes.
func TestAgentRestartDropsExpiredCarriedUsers(t *testing.T) {
	internal, alice, bob, carol, dave := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw"), hashOf(t, "carol-pw"), hashOf(t, "dave-pw")
	base := "basic_auth_users:\n  internal: " + internal + "\n"
	soon := time.Now().Add(2 * time.Second).Truncate(time.Second)
	f := newFixture(t, deadPortal(t), base)
	b, err := webconfig.ParseWebConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	last, err := webconfig.Merge(b,
		webconfig.Users{"c-alice": alice, "c-bob": bob, "c-carol": carol, "c-dave": dave},
		webconfig.Expiries{"c-alice": time.Now().Add(-time.Hour), "c-bob": time.Now().Add(time.Hour), "c-carol": soon})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.out, string(last.Doc)) // c-dave: a bare marker, as older agents wrote
	a := f.run(t)

	eventually(t, 2*time.Second, "/healthz answers 200", func() bool { return healthz(a) == http.StatusOK })
	prom := startPrometheus(t, f.out)
	wantStatus(t, prom, "c-alice", "alice-pw", http.StatusUnauthorized)
	wantStatus(t, prom, "internal", "internal-pw", http.StatusOK)
	wantStatus(t, prom, "c-bob", "bob-pw", http.StatusOK)
	wantStatus(t, prom, "c-dave", "dave-pw", http.StatusOK)
	if !strings.Contains(f.logs.String(), "credential expired; removed") {
		t.Errorf("no log line for c-alice's expiry:\n%s", f.logs)
	}
	if time.Now().Before(soon) {
		wantStatus(t, prom, "c-carol", "carol-pw", http.StatusOK)
	}
	eventually(t, time.Until(soon)+time.Second, "c-carol leaves the file within 1 s of its expiry", func() bool {
		b, _ := os.ReadFile(f.out)
		return !bytes.Contains(b, []byte("c-carol"))
	})
	wantStatus(t, prom, "c-carol", "carol-pw", http.StatusUnauthorized)
	wantStatus(t, prom, "c-bob", "bob-pw", http.StatusOK)
	if got := metric(t, a, "portal_agent_users"); got != 2 {
		t.Errorf("portal_agent_users %v, want 2 (c-bob and c-dave)", got)
	}
	if doc := readFile(t, f.out); !strings.Contains(doc, "c-bob: "+bob+" # from portal, expires ") || !strings.Contains(doc, "c-dave: "+dave+" # from portal\n") {
		t.Errorf("the carried users lost their markers:\n%s", doc)
	}
}

func TestAgentHealthzBeforeWrite(t *testing.T) {
	f := newFixture(t, deadPortal(t), "basic_auth_users:\n  internal: "+hashOf(t, "internal-pw")+"\n")
	a, err := New(f.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if code := healthz(a); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz %d before any write, want 503", code)
	}
}

// TestNewRefusesInvalidBase checks what `portal agent` says when the base is
// unusable: New is what cmdAgent calls before anything else.
func TestNewRefusesInvalidBase(t *testing.T) {
	tests := []struct {
		name, base, want string
	}{
		{"does not parse", "basic_auth_users: [\n", "yaml:"},
		{"invalid hash", "basic_auth_users:\n  internal: not-a-hash\n", `user "internal": not a bcrypt hash`},
		{"unknown key", "basic_auth_users:\n  internal: " + hashOf(t, "internal-pw") + "\nbasic_auth: {}\n", "field basic_auth not found"},
		{"no users", "http_server_config:\n  http2: false\n", "no basic_auth_users"},
		{"relative TLS file written elsewhere", "tls_server_config:\n  cert_file: server.crt\n  key_file: /etc/tls/server.key\n" +
			"basic_auth_users:\n  internal: " + hashOf(t, "internal-pw") + "\n", `cert_file "server.crt" is relative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, deadPortal(t), tt.base)
			_, err := New(f.cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("New accepted the base")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "base web config "+f.base+": invalid web config: ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s and containing %q", msg, f.base, tt.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		f := newFixture(t, deadPortal(t), "")
		f.cfg.BasePath = filepath.Join(f.dir, "nope.yml")
		if _, err := New(f.cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "nope.yml") {
			t.Errorf("error %v, want one naming the file", err)
		}
	})
}

func TestRunFailsWhenOutCannotBeWritten(t *testing.T) {
	f := newFixture(t, deadPortal(t), "basic_auth_users:\n  internal: "+hashOf(t, "internal-pw")+"\n")
	f.cfg.OutPath = filepath.Join(f.dir, "missing", "web-config.yml")
	a, err := New(f.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), f.cfg.OutPath) {
		t.Errorf("Run: %v, want an error naming %s", err, f.cfg.OutPath)
	}
}

// TestAgentBaseReload changes the base while the agent runs: a valid change
// takes effect, an invalid one is reported and leaves the file alone.
func TestAgentBaseReload(t *testing.T) {
	internal, alice, rotated := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "rotated-pw")
	portal := newStandIn(t, webconfig.Users{"c-alice": alice})
	f := newFixture(t, portal.url(t), "basic_auth_users:\n  internal: "+internal+"\n")
	f.cfg.Wait = 200 * time.Millisecond
	a := f.run(t)
	eventually(t, 2*time.Second, "the portal's users are written", func() bool {
		b, _ := os.ReadFile(f.out)
		return bytes.Contains(b, []byte("c-alice"))
	})

	writeFile(t, f.base, "basic_auth_users:\n  internal: "+rotated+"\n")
	eventually(t, 2*time.Second, "the rotated internal password is written", func() bool {
		b, _ := os.ReadFile(f.out)
		return bytes.Contains(b, []byte(rotated))
	})
	if !strings.Contains(readFile(t, f.out), alice) {
		t.Error("the portal's user was lost when the base changed")
	}

	before := readFile(t, f.out)
	writeFile(t, f.base, "basic_auth_users:\n  internal: oops\n")
	eventually(t, 2*time.Second, "the invalid base is counted", func() bool {
		return metric(t, a, "portal_agent_base_reload_failures_total") > 0
	})
	if after := readFile(t, f.out); after != before {
		t.Errorf("an invalid base changed the file:\n%s", after)
	}
}

// TestFailurePausesStayUnderFourSeconds follows runs of pauses after failed
// rounds in a row, each run started over as a success does, at the default
// interval of `portal agent` (1 s): at least the interval, about doubling
// (half to one and a half of interval·2^(n-1)), and once grown, spread
// between a third of 4 s and 4 s, never longer: a portal that comes back
// must find its agents within 5 s, however long it was away.
func TestFailurePausesStayUnderFourSeconds(t *testing.T) {
	interval := time.Second
	nominalCap := 4 * time.Second * 2 / 3 // the longest nominal pause: its jitter reaches 4 s
	lowest, highest := time.Duration(1<<62), time.Duration(0)
	a := agentWithInterval(t, interval)
	for range 200 {
		a.retry.Reset()
		for n := 1; n <= 12; n++ {
			nominal := min(interval<<(n-1), nominalCap)
			lo, hi := max(interval, nominal/2), nominal*3/2
			d := a.failurePause()
			if d < lo || d > hi || d > 4*time.Second {
				t.Fatalf("pause after failure %d = %s, want within [%s, %s] and at most 4s", n, d, lo, hi)
			}
			if n == 12 {
				lowest, highest = min(lowest, d), max(highest, d)
			}
		}
	}
	if lowest > 2*time.Second || highest < 3500*time.Millisecond {
		t.Errorf("capped pauses range over [%s, %s], want them jittered across [1.33s, 4s]", lowest, highest)
	}

	t.Run("an interval above 4s", func(t *testing.T) {
		a := agentWithInterval(t, 2*time.Minute)
		for n := 1; n <= 5; n++ {
			if d := a.failurePause(); d != 2*time.Minute {
				t.Errorf("pause after failure %d = %s, want the interval", n, d)
			}
		}
	})
}

// TestAgentPausesRestartAfterSuccess runs the agent against a portal that
// fails five times, answers once, then fails again: the pauses grow over the
// first failures, and the first failure after the answer pauses for about
// the interval again.
func TestAgentPausesRestartAfterSuccess(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1) == 6 {
			w.Write([]byte("basic_auth_users: {}\n"))
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, u, "basic_auth_users:\n  internal: "+hashOf(t, "internal-pw")+"\n")
	f.run(t)

	var pauses []time.Duration
	eventually(t, 5*time.Second, "six failures are logged", func() bool {
		pauses = loggedPauses(t, f.logs.String())
		return len(pauses) >= 6
	})
	// The log rounds each pause to the millisecond.
	interval := f.cfg.Interval
	aboutInterval := func(d time.Duration) bool { return d >= interval && d <= interval*3/2+time.Millisecond }
	if first, fifth := pauses[0], pauses[4]; !aboutInterval(first) || fifth < 8*interval {
		t.Errorf("pauses %v: want the first about %s and the fifth at least %s", pauses, interval, 8*interval)
	}
	if after := pauses[5]; !aboutInterval(after) {
		t.Errorf("pauses %v: the first after the portal answered is %s, want about %s", pauses, after, interval)
	}
}

// agentWithInterval is an agent that has not run, with interval as its
// Config.Interval.
func agentWithInterval(t *testing.T, interval time.Duration) *Agent {
	t.Helper()
	f := newFixture(t, deadPortal(t), "basic_auth_users:\n  internal: "+hashOf(t, "internal-pw")+"\n")
	f.cfg.Interval = interval
	a, err := New(f.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// loggedPauses reads the retry_in of each failed round from the agent's
// JSON log lines, in order.
func loggedPauses(t *testing.T, logs string) []time.Duration {
	t.Helper()
	var pauses []time.Duration
	for line := range strings.Lines(logs) {
		var rec struct {
			Msg     string `json:"msg"`
			RetryIn string `json:"retry_in"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if !strings.HasPrefix(rec.Msg, "sync with the portal failed") {
			continue
		}
		d, err := time.ParseDuration(rec.RetryIn)
		if err != nil {
			t.Fatalf("log line %q: retry_in: %v", line, err)
		}
		pauses = append(pauses, d)
	}
	return pauses
}

// hashOf is a bcrypt hash of password at the least cost: the tests need
// valid hashes, not slow ones.
func hashOf(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// costly is a hash of password at cost 4 relabelled as cost 31: bcrypt reads
// the cost from the prefix, so exporter-toolkit would spend 2^27 times the
// work on every login as its user (a day and a half of CPU at 1 µs per
// round), holding the one mutex every other uncached login waits on.
func costly(t *testing.T, password string) string {
	t.Helper()
	h := hashOf(t, password)
	if !strings.HasPrefix(h, "$2a$04$") {
		t.Fatalf("hash %q: want cost 4", h)
	}
	h = "$2a$31$" + strings.TrimPrefix(h, "$2a$04$")
	if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != 31 {
		t.Fatalf("bcrypt.Cost(%q) = %d, %v; want 31", h, cost, err)
	}
	return h
}

// readyz is /readyz's status and body.
func readyz(a *Agent) (int, string) {
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// TestAgentRefusesHostilePublications has a hostile (or broken) portal serve
// publications that would stall or bloat Prometheus: a hash of bcrypt cost
// 31, more users than the agent's default cap (5,000), an answer larger
// than its default 1 MiB, and one that fits but makes a file over a
// configured cap. The agent refuses each: the last good file stays, as
// exporter-toolkit reading it shows, the refusal is logged as an error and
// counted by reason, and /readyz says why. Logins stay fast throughout.
func TestAgentRefusesHostilePublications(t *testing.T) {
	internal, alice := hashOf(t, "internal-pw"), hashOf(t, "alice-pw")
	good := webconfig.Users{"c-alice": alice}
	portal := newStandIn(t, good)
	f := newFixture(t, portal.url(t), "basic_auth_users:\n  internal: "+internal+"\n")
	a := f.run(t)
	eventually(t, 2*time.Second, "the portal's users are written", func() bool {
		b, _ := os.ReadFile(f.out)
		return bytes.Contains(b, []byte("c-alice"))
	})
	prom := startPrometheus(t, f.out)

	many := webconfig.Users{}
	for i := range 5001 {
		many[fmt.Sprintf("c-%05d", i)] = alice
	}
	tests := []struct {
		name, reason string
		serve        func()
		want         string // in the log line and /readyz
	}{
		{"a hash of bcrypt cost 31", "bcrypt_cost",
			func() { portal.set(webconfig.Users{"c-alice": alice, "c-mallory": costly(t, "mallory-pw")}, "yaml") },
			`user \"c-mallory\" has a bcrypt hash of cost 31, above the 12`},
		{"5,001 users", "users",
			func() { portal.set(many, "yaml") },
			"holds 5001 users, more than the 5000"},
		{"an answer of more than 1 MiB", "bytes",
			func() { portal.pad(1<<20 + 1) },
			"larger than the 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			series := `portal_agent_publications_refused_total{reason="` + tt.reason + `"}`
			refused := metric(t, a, series)
			f.keepsFileThroughFailure(t, a, tt.serve)
			eventually(t, 5*time.Second, "the refusal is counted", func() bool { return metric(t, a, series) > refused })
			if doc := readFile(t, f.out); strings.Contains(doc, "c-mallory") || strings.Contains(doc, "c-00000") {
				t.Errorf("the refused users reached the file:\n%.300s", doc)
			}
			if !strings.Contains(f.logs.String(), `"level":"ERROR","msg":"the portal's answer is refused`) || !strings.Contains(f.logs.String(), tt.want) {
				t.Errorf("no error log line saying %q:\n%.2000s", tt.want, f.logs)
			}
			if code, body := readyz(a); code != http.StatusServiceUnavailable || !strings.Contains(body, strings.ReplaceAll(tt.want, `\"`, `"`)) {
				t.Errorf("/readyz %d %q, want 503 saying %q", code, body, tt.want)
			}
			if code := healthz(a); code != http.StatusOK {
				t.Errorf("/healthz %d, want 200: the last good file serves", code)
			}
			wantStatus(t, prom, "c-mallory", "mallory-pw", http.StatusUnauthorized)
			wantStatus(t, prom, "internal", "internal-pw", http.StatusOK)
			wantStatus(t, prom, "c-alice", "alice-pw", http.StatusOK)

			since := metric(t, a, "portal_agent_last_success_timestamp_seconds")
			portal.pad(0)
			portal.set(good, "yaml")
			eventually(t, 5*time.Second, "a success after the portal mends", func() bool {
				return metric(t, a, "portal_agent_last_success_timestamp_seconds") > since
			})
		})
	}
}

// TestAgentRefusesAFileOverItsByteCap: an answer within the cap that would
// make, with the base, a file over it is refused, and the last good file
// stays; so the volume holding the file never needs more than twice the cap.
func TestAgentRefusesAFileOverItsByteCap(t *testing.T) {
	internal, alice, bob := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw")
	portal := newStandIn(t, webconfig.Users{"c-alice": alice})
	f := newFixture(t, portal.url(t), "# "+strings.Repeat("a base with a long comment ", 40)+"\nbasic_auth_users:\n  internal: "+internal+"\n")
	f.cfg.MaxBytes = 2048
	a := f.run(t)
	eventually(t, 2*time.Second, "the portal's users are written", func() bool {
		b, _ := os.ReadFile(f.out)
		return bytes.Contains(b, []byte("c-alice"))
	})
	users := webconfig.Users{"c-alice": alice}
	for i := range 8 {
		users[fmt.Sprintf("c-bob%d", i)] = bob
	}
	portal.set(users, "yaml")
	eventually(t, 5*time.Second, "the refusal is counted", func() bool {
		return metric(t, a, `portal_agent_publications_refused_total{reason="bytes"}`) > 0
	})
	if doc := readFile(t, f.out); strings.Contains(doc, "c-bob") || len(doc) > f.cfg.MaxBytes {
		t.Errorf("the file grew past the cap (%d bytes):\n%s", len(doc), doc)
	}
	if !strings.Contains(f.logs.String(), "the web config with the portal's 9 users would be") {
		t.Errorf("no log line for the refusal:\n%s", f.logs)
	}
}

// TestNewRefusesABaseOverTheByteCap: a base larger than the file the agent
// may write stops the agent at start, naming the setting.
func TestNewRefusesABaseOverTheByteCap(t *testing.T) {
	f := newFixture(t, deadPortal(t), "# "+strings.Repeat("x", 4096)+"\nbasic_auth_users:\n  internal: "+hashOf(t, "internal-pw")+"\n")
	f.cfg.MaxBytes = 4096
	_, err := New(f.cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), f.base) || !strings.Contains(err.Error(), "PORTAL_AGENT_MAX_BYTES") {
		t.Errorf("New: %v, want an error naming the base and PORTAL_AGENT_MAX_BYTES", err)
	}
}

// TestAgentRestartRefusesCarriedCostlyHashes: a file an older agent wrote
// with a hash of cost 31 in it is not carried over at start; the base alone
// is written, and the refusal counted.
func TestAgentRestartRefusesCarriedCostlyHashes(t *testing.T) {
	internal := hashOf(t, "internal-pw")
	base := "basic_auth_users:\n  internal: " + internal + "\n"
	f := newFixture(t, deadPortal(t), base)
	b, err := webconfig.ParseWebConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	last, err := webconfig.Merge(b, webconfig.Users{"c-alice": hashOf(t, "alice-pw"), "c-mallory": costly(t, "mallory-pw")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.out, string(last.Doc))
	a := f.run(t)
	eventually(t, 2*time.Second, "/healthz answers 200", func() bool { return healthz(a) == http.StatusOK })
	if doc := readFile(t, f.out); strings.Contains(doc, "c-mallory") {
		t.Errorf("the costly hash was carried over:\n%s", doc)
	}
	if got := metric(t, a, `portal_agent_publications_refused_total{reason="bcrypt_cost"}`); got != 1 {
		t.Errorf("refusals for bcrypt_cost %v, want 1", got)
	}
}

// TestAgentReadyzFollowsTheLastSync: /healthz (liveness) answers 200 once
// the base is written, whether or not the portal ever accepted the token;
// /readyz answers 200 only while the latest round with the portal succeeded,
// recently, and otherwise says what failed and when the last success was.
func TestAgentReadyzFollowsTheLastSync(t *testing.T) {
	internal, alice := hashOf(t, "internal-pw"), hashOf(t, "alice-pw")
	portal := newStandIn(t, webconfig.Users{"c-alice": alice})
	f := newFixture(t, portal.url(t), "basic_auth_users:\n  internal: "+internal+"\n")
	writeFile(t, f.token, "a-token-the-portal-never-knew\n")
	a := f.run(t)

	eventually(t, 2*time.Second, "a refused token is counted", func() bool {
		return metric(t, a, "portal_agent_sync_failures_total") > 0
	})
	if code := healthz(a); code != http.StatusOK {
		t.Errorf("/healthz %d, want 200: the base is written", code)
	}
	code, body := readyz(a)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "never answered") || !strings.Contains(body, "(401)") {
		t.Errorf("/readyz %d %q, want 503 saying the portal never answered, and the 401", code, body)
	}
	if strings.Contains(body, "a-token-the-portal-never-knew") {
		t.Error("/readyz shows the token")
	}

	writeFile(t, f.token, syncToken+"\n")
	eventually(t, 5*time.Second, "/readyz answers 200", func() bool { code, _ := readyz(a); return code == http.StatusOK })
	if _, body := readyz(a); !strings.HasPrefix(body, "ready: the last sync with the portal succeeded ") {
		t.Errorf("/readyz body %q", body)
	}
	if ready, msg := a.readiness(time.Now().Add(a.ReadyWithin() + time.Second)); ready || !strings.Contains(msg, "longer than") {
		t.Errorf("readiness after ReadyWithin without a success: %v %q, want not ready, saying so", ready, msg)
	}

	portal.stop()
	eventually(t, 5*time.Second, "/readyz answers 503", func() bool { code, _ := readyz(a); return code == http.StatusServiceUnavailable })
	if _, body := readyz(a); !strings.Contains(body, "the latest round failed") || !strings.Contains(body, "portal unreachable") ||
		!strings.Contains(body, "the last success was") {
		t.Errorf("/readyz body %q, want the failure and the last success", body)
	}
	if code := healthz(a); code != http.StatusOK {
		t.Errorf("/healthz %d, want 200: the last good file still serves", code)
	}
}

// TestReadyWithinFitsALongPoll: a healthy agent ends a round at least every
// Config.Wait (the portal answers a held request by then), so ReadyWithin
// must leave room for it; with the defaults of `portal agent`, 62 s.
func TestReadyWithinFitsALongPoll(t *testing.T) {
	f := newFixture(t, deadPortal(t), "basic_auth_users:\n  internal: "+hashOf(t, "internal-pw")+"\n")
	f.cfg.Wait, f.cfg.Interval = 30*time.Second, time.Second
	a, err := New(f.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.ReadyWithin(); got != 62*time.Second {
		t.Errorf("ReadyWithin %s, want 62s", got)
	}
}

// secretVolume lays files out as the kubelet lays out a mounted Secret:
// each key a symlink through ..data to a folder of the current version,
// where an update writes a new folder and swaps ..data in one rename, so
// the files the agent opens are replaced, never rewritten.
type secretVolume struct {
	dir     string
	version int
}

func newSecretVolume(t *testing.T, files map[string]string) *secretVolume {
	t.Helper()
	v := &secretVolume{dir: t.TempDir()}
	v.update(t, files)
	for key := range files {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(v.dir, key)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (v *secretVolume) path(key string) string { return filepath.Join(v.dir, key) }

func (v *secretVolume) update(t *testing.T, files map[string]string) {
	t.Helper()
	v.version++
	name := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", v.version, v.version)
	if err := os.Mkdir(filepath.Join(v.dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	for key, content := range files {
		writeFile(t, filepath.Join(v.dir, name, key), content)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(name, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// TestAgentBackInStepWithin5s measures, against the real agent at the
// defaults of `portal agent` (a 30 s long-poll, a 1 s interval) and a real
// HTTP portal, how long the agent takes to be in step again after each of
// the changes that used to wait for a grown back-off or a long-poll's end:
// the portal coming back after 20 s away (the back-off has grown to its
// cap), a rotated sync token, and a changed base, the last two delivered as
// Kubernetes delivers a Secret update. Each is bounded at 5 s, and so are
// the pauses the agent logged after failures meanwhile; the figures are
// logged.
func TestAgentBackInStepWithin5s(t *testing.T) {
	const bound = 5 * time.Second
	internal, alice, bob := hashOf(t, "internal-pw"), hashOf(t, "alice-pw"), hashOf(t, "bob-pw")
	base := "basic_auth_users:\n  internal: " + internal + "\n"
	// start runs an agent at the defaults on portal, with the token and
	// base in a Secret volume, and waits for it to write c-alice.
	start := func(t *testing.T, portal *standIn) (*fixture, *secretVolume, *Agent) {
		t.Helper()
		f := newFixture(t, portal.url(t), base)
		vol := newSecretVolume(t, map[string]string{"token": syncToken + "\n", "base-web-config.yml": base})
		f.cfg.TokenFile, f.cfg.BasePath = vol.path("token"), vol.path("base-web-config.yml")
		f.cfg.Wait, f.cfg.Interval = 30*time.Second, time.Second
		a := f.run(t)
		eventually(t, 5*time.Second, "the portal's users are written", func() bool {
			b, _ := os.ReadFile(f.out)
			return bytes.Contains(b, []byte("c-alice"))
		})
		return f, vol, a
	}
	inFile := func(f *fixture, s string) func() bool {
		return func() bool { b, _ := os.ReadFile(f.out); return bytes.Contains(b, []byte(s)) }
	}
	// pausesCapped checks the pauses the agent logged after failures: a
	// measured recovery may be lucky, but no pause over 4 s means none can
	// be much over 4 s.
	pausesCapped := func(t *testing.T, f *fixture) {
		t.Helper()
		pauses := loggedPauses(t, f.logs.String())
		if len(pauses) == 0 || slices.Max(pauses) > 4*time.Second {
			t.Errorf("pauses after failures %v: want some, none over 4s", pauses)
		}
	}

	t.Run("portal back after 20s away", func(t *testing.T) {
		t.Parallel()
		portal := newStandIn(t, webconfig.Users{"c-alice": alice})
		f, _, a := start(t, portal)
		portal.stop()
		time.Sleep(20 * time.Second)
		failures := metric(t, a, "portal_agent_sync_failures_total")
		portal.set(webconfig.Users{"c-alice": alice, "c-bob": bob}, "yaml") // revoked or issued meanwhile
		portal.restart(t)
		back := time.Now()
		eventually(t, bound, "c-bob written after the portal is back", inFile(f, "c-bob"))
		t.Logf("portal back → synced: %s (after %v failed rounds in 20 s away)", time.Since(back).Round(time.Millisecond), failures)
		pausesCapped(t, f)
		prom := startPrometheus(t, f.out)
		wantStatus(t, prom, "c-bob", "bob-pw", http.StatusOK)
	})

	t.Run("token file changed while the agent holds a long-poll", func(t *testing.T) {
		t.Parallel()
		portal := newStandIn(t, webconfig.Users{"c-alice": alice})
		f, vol, _ := start(t, portal)
		time.Sleep(1500 * time.Millisecond) // the agent now holds a 30 s long-poll with the old token
		const next = "the-next-sync-token"
		portal.rotate(false, syncToken, next) // a portal that accepts both for a while, and lets the held request be
		vol.update(t, map[string]string{"token": next + "\n", "base-web-config.yml": base})
		changed := time.Now()
		eventually(t, bound, "the new token reaches the portal", func() bool { return !portal.firstSeen(next).IsZero() })
		t.Logf("token file changed → applied (first request with it): %s", portal.firstSeen(next).Sub(changed).Round(time.Millisecond))
		if strings.Contains(f.logs.String(), next) {
			t.Error("the new token appears in the logs")
		}
	})

	t.Run("token rotated and the old one refused", func(t *testing.T) {
		t.Parallel()
		portal := newStandIn(t, webconfig.Users{"c-alice": alice})
		f, vol, a := start(t, portal)
		const next = "the-next-sync-token"
		portal.rotate(true, next) // the held long-poll ends with 401; retries with the old token fail
		portal.set(webconfig.Users{"c-alice": alice, "c-bob": bob}, "yaml")
		time.Sleep(10 * time.Second) // the Secret takes a while to reach the pod; the back-off grows
		failures := metric(t, a, "portal_agent_sync_failures_total")
		vol.update(t, map[string]string{"token": next + "\n", "base-web-config.yml": base})
		changed := time.Now()
		eventually(t, bound, "c-bob written with the new token", inFile(f, "c-bob"))
		t.Logf("token file changed → applied (synced, after %v refusals): %s", failures, time.Since(changed).Round(time.Millisecond))
		pausesCapped(t, f)
	})

	t.Run("base changed while the agent holds a long-poll", func(t *testing.T) {
		t.Parallel()
		portal := newStandIn(t, webconfig.Users{"c-alice": alice})
		f, vol, _ := start(t, portal)
		time.Sleep(1500 * time.Millisecond) // the agent now holds a 30 s long-poll
		rotated := hashOf(t, "rotated-internal-pw")
		vol.update(t, map[string]string{"token": syncToken + "\n", "base-web-config.yml": "basic_auth_users:\n  internal: " + rotated + "\n"})
		changed := time.Now()
		eventually(t, bound, "the rotated internal password is written", inFile(f, rotated))
		t.Logf("base file changed → applied: %s", time.Since(changed).Round(time.Millisecond))
		prom := startPrometheus(t, f.out)
		wantStatus(t, prom, "internal", "rotated-internal-pw", http.StatusOK)
		wantStatus(t, prom, "internal", "internal-pw", http.StatusUnauthorized)
		wantStatus(t, prom, "c-alice", "alice-pw", http.StatusOK)
	})
}
