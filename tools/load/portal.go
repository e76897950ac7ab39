package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/2i2c-org/credential-portal/internal/devidp"
	"github.com/2i2c-org/credential-portal/internal/loadseed"
)

// loadClientID is the portal's OIDC client at the load's provider.
const loadClientID = "portal-load"

// buildPortal builds the portal of this module into bin.
func buildPortal(ctx context.Context, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/2i2c-org/credential-portal/cmd/portal")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the portal: %w", err)
	}
	return nil
}

// freeAddr returns a loopback address nothing listens on, for a process
// that must be told its address before it starts.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// provider is the development OIDC provider, served by this program on a
// port of its own, as the issuer of the portal under test.
type provider struct {
	idp    *devidp.Provider
	secret string
	srv    *http.Server
}

func startProvider(portalBase string) (*provider, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	secret := rand.Text()
	idp, err := devidp.NewStandalone("http://"+ln.Addr().String(), portalBase, loadClientID, secret)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p := &provider{idp: idp, secret: secret, srv: &http.Server{Handler: idp.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go p.srv.Serve(ln) //nolint:errcheck // ends with Close
	return p, nil
}

func (p *provider) close() { p.srv.Close() }

// runningPortal is `portal serve` under test, a process of its own so that
// its memory is its own.
type runningPortal struct {
	cmd  *exec.Cmd
	base string
	once sync.Once
	peak atomic.Int64 // the largest resident memory seen, bytes
	done chan struct{}
}

// startPortal starts `portal serve` at base on the database dbURL, signing
// people in through the provider, and waits until it is ready. Settings
// not named here keep their defaults, bcrypt cost and the log's level (info,
// a line per request) included: the log, written to log, is part of what a
// page view costs.
func startPortal(ctx context.Context, bin, base, dbURL string, idp *provider, log io.Writer) (*runningPortal, error) {
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"PORTAL_LISTEN="+strings.TrimPrefix(base, "http://"),
		"PORTAL_BASE_URL="+base,
		"PORTAL_OIDC_ISSUER="+idp.idp.Issuer(),
		"PORTAL_OIDC_CLIENT_ID="+loadClientID,
		"PORTAL_OIDC_CLIENT_SECRET="+idp.secret,
		"PORTAL_STAFF_EMAIL_DOMAINS=2i2c.org",
	)
	cmd.Stdout, cmd.Stderr = io.Discard, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &runningPortal{cmd: cmd, base: base, done: make(chan struct{})}
	go p.sample()
	if err := loadseed.WaitReady(p.base, 60*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// sample records the process's resident memory every 50 ms until it stops.
func (p *runningPortal) sample() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p.notePeak()
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

func (p *runningPortal) notePeak() {
	for _, field := range []string{"VmRSS", "VmHWM"} {
		if v, err := loadseed.RSS(p.cmd.Process.Pid, field); err == nil && v > p.peak.Load() {
			p.peak.Store(v)
		}
	}
}

// peakRSS returns the largest resident memory of the process so far: the
// kernel's high-water mark (VmHWM) or the largest sample, whichever is more.
func (p *runningPortal) peakRSS() int64 {
	p.notePeak()
	return p.peak.Load()
}

func (p *runningPortal) stop() {
	p.once.Do(func() {
		close(p.done)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	})
}

// verify runs `portal audit verify` on the database and returns its output.
func verify(ctx context.Context, bin, dbURL string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "audit", "verify")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("portal audit verify: %w\n%s", err, out)
	}
	return string(out), nil
}

// logErrors counts the lines of the portal's log at level ERROR, and returns
// the first few.
func logErrors(path string) (n int, first []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"level":"ERROR"`) {
			n++
			if len(first) < maxErrorsShown {
				first = append(first, sc.Text())
			}
		}
	}
	return n, first, sc.Err()
}
