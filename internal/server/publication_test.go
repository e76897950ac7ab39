package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/2i2c-org/credential-portal/internal/agent"
	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// syncToken creates the cluster's sync token through the staff API.
func (b *browser) syncToken(cluster string) string {
	b.t.Helper()
	r := b.apiPost("/api/v1/clusters/"+cluster+"/sync-token", `{}`)
	var out struct{ Token string }
	if err := json.Unmarshal([]byte(r.Body), &out); err != nil || r.StatusCode != http.StatusOK || out.Token == "" {
		b.t.Fatalf("sync token: %d %s", r.StatusCode, r.Body)
	}
	return out.Token
}

// startPrometheus serves a trivial handler behind exporter-toolkit's web
// package, which reads webConfig at every request as Prometheus does.
func startPrometheus(t testing.TB, webConfig string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "prometheus") })}
	systemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{ln.Addr().String()}, WebSystemdSocket: &systemd, WebConfigFile: &webConfig}
	done := make(chan error, 1)
	go func() { done <- web.Serve(ln, srv, flags, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// promStatus is the status Prometheus at u answers user with password.
func promStatus(t *testing.T, u, user, password string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u+"/api/v1/query", nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// within polls cond until it holds, failing the test after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// sidecar runs `portal agent` against portalURL for cluster, with a base
// web config holding 2i2c's internal user, and returns the file it writes.
func sidecar(t *testing.T, portalURL, cluster, token, internalHash string) string {
	t.Helper()
	dir := t.TempDir()
	base, tokenFile, out := filepath.Join(dir, "base.yml"), filepath.Join(dir, "token"), filepath.Join(dir, "web-config.yml")
	if err := os.WriteFile(base, []byte("basic_auth_users:\n  internal: "+internalHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(portalURL)
	a, err := agent.New(agent.Config{PortalURL: u, Cluster: cluster, TokenFile: tokenFile, BasePath: base, OutPath: out,
		Wait: 30 * time.Second, Interval: 50 * time.Millisecond}, applog.New(io.Discard, slog.LevelError))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	within(t, 10*time.Second, "the agent writes its first file", func() bool { _, err := os.Stat(out); return err == nil })
	return out
}

func internalUser(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("internal-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestPrometheusFollowsThePortal: a real exporter-toolkit server reads the
// web config that `portal agent` writes from a running portal. Issued
// credentials work, revoked and expired ones stop within 2 s, the internal
// user always works, and a stopped portal leaves the file serving.
func TestPrometheusFollowsThePortal(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	first, second := p.issue(alice, sam, "awi-ciroh"), p.issue(bob, sam, "awi-ciroh")

	file := sidecar(t, p.URL, "awi-ciroh", sam.syncToken("awi-ciroh"), internalUser(t))
	prom := startPrometheus(t, file)
	within(t, 10*time.Second, "the issued credential works", func() bool { return promStatus(t, prom, first.Username, first.Password) == 200 })
	for _, c := range []struct {
		user, password string
		want           int
	}{
		{"internal", "internal-secret", 200},
		{second.Username, second.Password, 200},
		{first.Username, "wrong", 401},
		{"internal", "wrong", 401},
		{"nobody", first.Password, 401},
	} {
		if got := promStatus(t, prom, c.user, c.password); got != c.want {
			t.Errorf("%s: %d, want %d", c.user, got, c.want)
		}
	}

	// Revoked: refused within 2 s; the internal user still works.
	alice.submit(fmt.Sprintf("/credentials/%d", first.ID), fmt.Sprintf("/credentials/%d/revoke", first.ID), url.Values{"reason": {"no longer needed"}})
	took := within(t, 5*time.Second, "the revoked credential is refused", func() bool { return promStatus(t, prom, first.Username, first.Password) == 401 })
	t.Logf("revocation reached Prometheus in %s", took)
	if promStatus(t, prom, "internal", "internal-secret") != 200 || promStatus(t, prom, second.Username, second.Password) != 200 {
		t.Error("a revocation locked out the internal user or another credential")
	}

	// Expired: decided by the query when the moment comes, no job needed.
	if _, err := p.Store.Pool().Exec(context.Background(),
		`UPDATE credentials SET issued_at = now() - interval '1 day', expires_at = now() + interval '1 second' WHERE id = $1`, second.ID); err != nil {
		t.Fatal(err)
	}
	took = within(t, 5*time.Second, "the expired credential is refused", func() bool { return promStatus(t, prom, second.Username, second.Password) == 401 })
	t.Logf("expiry reached Prometheus %s after the change", took)

	// The portal goes away: the file stays as it was and still serves.
	before, _ := os.ReadFile(file)
	p.Server.Drain() // as a shutdown does: waiting long-polls answer at once
	p.stop()
	time.Sleep(300 * time.Millisecond)
	after, _ := os.ReadFile(file)
	if string(before) != string(after) {
		t.Error("the web config changed while the portal was down")
	}
	if promStatus(t, prom, "internal", "internal-secret") != 200 {
		t.Error("with the portal down, the internal user is refused")
	}
}

// TestRevocationReachesAnAgentOnAnotherReplica: two portal servers on one
// database; the agent long-polls server B; a revocation on server A reaches
// it within 2 s, through PostgreSQL's LISTEN/NOTIFY.
func TestRevocationReachesAnAgentOnAnotherReplica(t *testing.T) {
	t.Parallel()
	a := newPortal(t, portalOptions{})
	b := newPortal(t, portalOptions{store: store.New(a.Store.Pool())})
	a.addCluster("awi-ciroh")
	alice, sam := a.signedIn("alice@example.org"), a.signedIn("sam@2i2c.org")
	cred := a.issue(alice, sam, "awi-ciroh")

	file := sidecar(t, b.URL, "awi-ciroh", sam.syncToken("awi-ciroh"), internalUser(t))
	prom := startPrometheus(t, file)
	within(t, 10*time.Second, "the credential works through replica B", func() bool { return promStatus(t, prom, cred.Username, cred.Password) == 200 })
	time.Sleep(200 * time.Millisecond) // the agent is now waiting in a long-poll on B

	r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/report-compromised", cred.ID), `{"details":"pasted in a public chat"}`)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "renew_url") {
		t.Fatalf("report compromised on A: %d %s", r.StatusCode, r.Body)
	}
	took := within(t, 5*time.Second, "replica B's agent drops the compromised credential", func() bool {
		return promStatus(t, prom, cred.Username, cred.Password) == 401
	})
	t.Logf("a revocation on replica A reached Prometheus through replica B in %s", took)
}

func TestWebConfigEndpoint(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	p.addCluster("awi-ciroh")
	p.addCluster("2i2c")
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	cred := p.issue(alice, sam, "awi-ciroh")
	token, other := sam.syncToken("awi-ciroh"), sam.syncToken("2i2c")

	get := func(cluster, token, query string, header map[string]string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/clusters/"+cluster+"/web-config.yml"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	for _, tt := range []struct{ name, cluster, token string }{
		{"no token", "awi-ciroh", ""},
		{"malformed token", "awi-ciroh", "not a token"},
		{"another cluster's token", "awi-ciroh", other},
		{"unknown cluster", "nope", token},
		{"rotated-out token", "awi-ciroh", strings.TrimSuffix(token, token[len(token)-1:]) + "x"},
	} {
		status, _, body := get(tt.cluster, tt.token, "", nil)
		if status != http.StatusUnauthorized || body != "" {
			t.Errorf("%s: %d %q, want 401 and nothing more", tt.name, status, body)
		}
	}

	status, h, body := get("awi-ciroh", token, "", nil)
	if status != 200 || !strings.Contains(body, cred.Username+": $2") || h.Get("ETag") == "" {
		t.Fatalf("web config: %d %v\n%s", status, h, body)
	}
	if users, expires, err := webconfig.ParseUsers([]byte(body)); err != nil || len(users) != 1 {
		t.Errorf("the served web config does not read back strictly: %v, %d users", err, len(users))
	} else if at := expires[cred.Username]; !at.After(time.Now()) || !strings.Contains(body, "# from portal, expires "+at.Format(time.RFC3339)+"\n") {
		t.Errorf("the served web config does not publish the credential's expiry (%v):\n%s", at, body)
	}
	status, _, _ = get("awi-ciroh", token, "", map[string]string{"If-None-Match": h.Get("ETag")})
	if status != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: %d, want 304", status)
	}
	start := time.Now()
	status, _, _ = get("awi-ciroh", token, "?wait=300ms", map[string]string{"If-None-Match": h.Get("ETag")})
	if status != http.StatusNotModified || time.Since(start) < 250*time.Millisecond {
		t.Errorf("long-poll without a change: %d after %s, want 304 after the wait", status, time.Since(start))
	}
	if status, _, body := get("awi-ciroh", token, "?wait=forever", nil); status != http.StatusUnprocessableEntity {
		t.Errorf("bad wait: %d %s", status, body)
	}
	if status, _, body := get("2i2c", other, "", nil); status != 200 || !strings.Contains(body, "basic_auth_users: {}") {
		t.Errorf("a cluster without credentials: %d %q", status, body)
	}

	// htpasswd, checked by Apache's own verifier.
	status, _, body = get("awi-ciroh", token, "?format=htpasswd", nil)
	if status != 200 {
		t.Fatalf("htpasswd: %d %s", status, body)
	}
	htpasswd, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Fatal("htpasswd is missing: install apache2-utils (Debian) to check the htpasswd rendering")
	}
	f := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(htpasswd, "-vb", f, cred.Username, cred.Password).CombinedOutput(); err != nil {
		t.Errorf("htpasswd -vb with the issued password: %v\n%s", err, out)
	}
	if err := exec.Command(htpasswd, "-vb", f, cred.Username, "wrong").Run(); err == nil {
		t.Error("htpasswd -vb accepts a wrong password")
	}
}

// TestRotatedTokenEndsALongPoll: a long-poll that began with a token
// rotated out while it waited gets 401, not the changed set.
func TestRotatedTokenEndsALongPoll(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	old := sam.syncToken("awi-ciroh")
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/clusters/awi-ciroh/web-config.yml", nil)
	req.Header.Set("Authorization", "Bearer "+old)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")

	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/clusters/awi-ciroh/web-config.yml?wait=20s", nil)
		req.Header.Set("Authorization", "Bearer "+old)
		req.Header.Set("If-None-Match", etag)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b)}
	}()
	time.Sleep(300 * time.Millisecond) // the long-poll waits
	sam.syncToken("awi-ciroh")         // rotated
	alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", cred.ID), `{"reason":"rotation test"}`)
	select {
	case r := <-done:
		if r.status != http.StatusUnauthorized || r.body != "" {
			t.Errorf("the waiting long-poll with the rotated-out token got %d %q, want 401 and nothing", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll did not answer after the change")
	}
}
