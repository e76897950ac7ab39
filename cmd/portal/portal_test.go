package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/logtest"
	"github.com/2i2c-org/credential-portal/internal/pglocal"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls until cond holds or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeReadyzFollowsTheDatabase: a portal started while its database is
// down serves, says 503 on /readyz and logs why; once the database is up it
// says 200 without a restart.
func TestServeReadyzFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "readyz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg, err := pglocal.Start(ctx, pglocal.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateDatabase(ctx, "portal"); err != nil {
		t.Fatal(err)
	}
	dbURL := pg.URL("portal")
	if status, _, stderr := runPortal(t, map[string]string{"DATABASE_URL": dbURL}, "migrate", "up"); status != 0 {
		t.Fatalf("migrate up: %d %s", status, stderr)
	}
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	var stderr logtest.Buffer
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		getenv := func(k string) string {
			return complete(map[string]string{"DATABASE_URL": dbURL, "PORTAL_LISTEN": addr,
				"PORTAL_BASE_URL": "http://" + addr})[k]
		}
		done <- run(runCtx, []string{"serve"}, env{getenv: getenv, stdout: io.Discard, stderr: &stderr})
	}()
	readyz := "http://" + addr + "/readyz"
	waitFor(t, 10*time.Second, "the portal to listen", func() bool { return status("http://"+addr+"/healthz") == 200 })
	if got := status(readyz); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down: %d, want 503", got)
	}
	if !strings.Contains(stderr.String(), "database unreachable") {
		t.Errorf("the log does not say why the portal is not ready:\n%s", stderr.String())
	}
	if code, _, out := runPortal(t, nil, "healthcheck", "--url", readyz); code != 1 || !strings.Contains(out, "503") {
		t.Errorf("healthcheck while not ready: exit %d, %q; want 1 naming the 503", code, out)
	}

	pg, err = pglocal.Start(ctx, pglocal.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop(context.Background()) })
	waitFor(t, 10*time.Second, "/readyz to answer 200 once the database is up", func() bool { return status(readyz) == 200 })
	if code, _, out := runPortal(t, nil, "healthcheck", "--url", readyz); code != 0 {
		t.Errorf("healthcheck once ready: exit %d, %q", code, out)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after SIGTERM, want 0:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeRefusesAnOldSchema: a reachable database without the portal's
// schema stops serve with a message saying what to do.
func TestServeRefusesAnOldSchema(t *testing.T) {
	t.Parallel()
	status, _, stderr := runPortal(t, complete(map[string]string{"DATABASE_URL": pgtest.Empty(t), "PORTAL_LISTEN": freeAddr(t)}), "serve")
	if status != 1 || !strings.Contains(stderr, "portal migrate up") {
		t.Errorf("serve on an empty database: exit %d, stderr %q; want 1 and advice to run portal migrate up", status, stderr)
	}
}

func TestMigrateStatus(t *testing.T) {
	t.Parallel()
	db := map[string]string{"DATABASE_URL": pgtest.Empty(t)}
	status, stdout, _ := runPortal(t, db, "migrate", "status")
	if status != 0 || !strings.Contains(stdout, "pending") || !strings.Contains(stdout, "portal migrate up") {
		t.Errorf("status of an empty database: %d\n%s", status, stdout)
	}
	if status, stdout, stderr := runPortal(t, db, "migrate", "up"); status != 0 || !strings.Contains(stdout, "applied") {
		t.Fatalf("migrate up: %d %s %s", status, stdout, stderr)
	}
	status, stdout, _ = runPortal(t, db, "migrate", "status")
	if status != 0 || strings.Contains(stdout, "pending") || !strings.Contains(stdout, "up to date") {
		t.Errorf("status after up: %d\n%s", status, stdout)
	}
}

// buildPortal compiles the portal binary once for the tests that run it as a
// person would.
func buildPortal(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "portal")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// devProcess is a running `portal dev`.
type devProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr *logtest.Buffer
}

func startDev(t *testing.T, bin, workDir, addr string, args ...string) *devProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"dev", "--listen", addr}, args...)...)
	cmd.Dir = workDir
	// No DATABASE_URL: dev starts its private PostgreSQL.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "PORTAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, stderr: &logtest.Buffer{}}
	cmd.Stderr = p.stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(15 * time.Second)
	for p.url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("portal dev exited before printing its URL:\n%s", p.stderr.String())
			}
			if rest, ok := strings.CutPrefix(l, "Portal at "); ok {
				p.url = strings.Fields(rest)[0]
			}
		case <-timeout:
			t.Fatalf("portal dev printed no URL within 15 s:\n%s", p.stderr.String())
		}
	}
	t.Logf("portal dev printed %s after %s", p.url, time.Since(started).Round(time.Millisecond))
	go func() {
		for range lines {
		}
	}()
	return p
}

// interrupt sends Ctrl-C and waits for a clean exit.
func (p *devProcess) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("portal dev exited with %v after Ctrl-C:\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("portal dev did not exit after Ctrl-C")
	}
}

// postgresRunningIn reports whether a postgres process serves data under dir.
func postgresRunningIn(t *testing.T, dir string) bool {
	t.Helper()
	out, _ := exec.Command("ps", "-eo", "args").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "postgres") && strings.Contains(line, dir) {
			return true
		}
	}
	return false
}

// TestDevMode runs `portal dev` as a person would: it prints its URL, is
// ready, signs the demo staff member in, leaves no PostgreSQL behind on
// Ctrl-C, and finds its data again on the next run.
func TestDevMode(t *testing.T) {
	t.Parallel()
	bin := buildPortal(t)
	work, err := os.MkdirTemp("", "devmode")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil { // as a checkout is: the postgres user must enter it
		t.Fatal(err)
	}
	addr := freeAddr(t)

	dev := startDev(t, bin, work, addr)
	if got := status(dev.url + "/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz: %d\n%s", got, dev.stderr.String())
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	var page string
	waitFor(t, 10*time.Second, "sign-in to become available", func() bool {
		resp, err := client.Get(dev.url + "/login?login_hint=sam@2i2c.org")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if !strings.Contains(page, "Sam Staff") || !strings.Contains(page, "role-staff") {
		t.Errorf("GET /login?login_hint=sam@2i2c.org did not end signed in as staff:\n%s", page)
	}
	dev.interrupt(t)
	if postgresRunningIn(t, work) {
		t.Fatal("a PostgreSQL process is left running after Ctrl-C")
	}

	// The second run finds the first run's data.
	dev = startDev(t, bin, work, addr)
	conn, err := pgx.Connect(context.Background(), "host="+filepath.Join(work, ".portal-dev", "socket")+" user=postgres dbname=portal sslmode=disable")
	if err != nil {
		t.Fatalf("connect to the private database: %v", err)
	}
	var n int
	err = conn.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE email = 'sam@2i2c.org'`).Scan(&n)
	conn.Close(context.Background())
	if err != nil || n != 1 {
		t.Errorf("second run: %d users named sam (%v); want the first run's one", n, err)
	}
	var health map[string]string
	resp, err := http.Get(dev.url + "/healthz")
	if err == nil {
		json.NewDecoder(resp.Body).Decode(&health)
		resp.Body.Close()
	}
	if health["status"] != "ok" {
		t.Errorf("/healthz on the second run: %v %v", health, err)
	}
	dev.interrupt(t)
	if postgresRunningIn(t, work) {
		t.Fatal("a PostgreSQL process is left running after the second Ctrl-C")
	}
}
