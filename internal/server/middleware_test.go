package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestCSRFTokenRequired(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	b.signIn("alice@example.org")
	for _, form := range []url.Values{{}, {"csrf": {"not-the-token"}}} {
		r := b.post("/logout", form)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("POST /logout with csrf %q: %d, want 403", form.Get("csrf"), r.StatusCode)
		}
	}
	if r := b.get("/dashboard"); !strings.Contains(r.Body, "Alice Example") {
		t.Error("a refused sign-out signed the user out")
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	for _, path := range []string{"/", "/login?login_hint=alice@example.org", "/nope"} {
		r := p.browser().get(path)
		h := r.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Request-Id") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS on a plain-http portal", path)
		}
		if strings.Contains(r.Body, "<script") || strings.Contains(r.Body, "style=") {
			t.Errorf("%s: inline script or style in the page", path)
		}
	}
}

func TestRequestBodiesAreLimited(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	form := alice.get("/requests/new")
	r := alice.post("/requests", url.Values{"csrf": {csrfToken(t, form.Body)}, "cluster": {"awi-ciroh"},
		"public_key": {strings.Repeat("a", 100<<10)}, "justification": {"A perfectly fine reason."}})
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 100 KiB form: %d, want 413", r.StatusCode)
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored from an oversized form", n)
	}
}

// TestRequestIDs: every response carries a request ID, fresh even when the
// client sends one, and the log lines about the request carry the same ID.
func TestRequestIDs(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/no/such/page", nil)
	req.Header.Set("X-Request-Id", "forged-by-the-client")
	r := p.browser().do(req)
	id := r.Header.Get("X-Request-Id")
	if id == "" || id == "forged-by-the-client" || !strings.Contains(r.Body, id) {
		t.Fatalf("request ID %q; want a fresh one, also on the error page", id)
	}
	var found bool
	for line := range strings.Lines(p.logs.String()) {
		if strings.Contains(line, `"path":"/no/such/page"`) {
			found = true
			if !strings.Contains(line, `"request_id":"`+id+`"`) {
				t.Errorf("log line without the request's ID: %s", line)
			}
		}
	}
	if !found {
		t.Error("no log line for the request")
	}
}
