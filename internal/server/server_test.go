package server

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

func TestErrorPagesKeepDetailsOut(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.signedIn("alice@example.org")
	r := b.get("/requests/not-a-number")
	if r.StatusCode != http.StatusNotFound || !strings.Contains(r.Body, "Alice Example") || !strings.Contains(r.Body, "Support reference: ") {
		t.Errorf("404 page: %d; want the portal's page with the header and the request ID", r.StatusCode)
	}
	if r := b.get("/api/v1/requests/999"); r.StatusCode != http.StatusNotFound || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("API 404: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	// A failure inside: the database is gone. The page says nothing of it.
	p.Store.Pool().Close()
	r = b.get("/dashboard")
	if r.StatusCode != http.StatusInternalServerError && r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dashboard without a database: %d", r.StatusCode)
	}
	for _, leak := range []string{"pool", "closed", "sql", "store:"} {
		if strings.Contains(strings.ToLower(r.Body), leak) {
			t.Errorf("the error page leaks %q:\n%s", leak, r.Body)
		}
	}
	if !strings.Contains(p.logs.String(), `"level":"ERROR"`) {
		t.Error("the failure was not logged")
	}
}

// TestRefusalsCannotFloodTheAuditLog: the audit log keeps every row for
// good, so what strangers can write into it is bounded, in count and size.
func TestRefusalsCannotFloodTheAuditLog(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	huge := strings.Repeat("x", 20000)
	for range 30 {
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/logout", strings.NewReader(""))
		req.Header.Set("User-Agent", huge)
		if r := b.do(req); r.StatusCode != http.StatusForbidden {
			t.Fatalf("POST /logout without a token: %d", r.StatusCode)
		}
	}
	n := p.count(`SELECT count(*) FROM audit_events WHERE action = 'access.refused'`)
	if n == 0 || n > 10 {
		t.Errorf("%d refusals audited from one address in a burst of 30, want between 1 and 10", n)
	}
	if longest := p.count(`SELECT max(octet_length(user_agent)) FROM audit_events`); longest > 520 {
		t.Errorf("an audited user agent of %d bytes", longest)
	}
}

// TestOddBytesAreRefusedNotFailed: a user agent that is not UTF-8, or a NUL
// in a form field, is an input problem (4xx or cleaned), never a 500.
func TestOddBytesAreRefusedNotFailed(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	key := "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	r := alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"}, "public_key": {key},
		"justification": {"Dashboards\x00 for the team."}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "control character") {
		t.Errorf("a NUL in the justification: %d", r.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/dashboard", nil)
	req.Header.Set("User-Agent", "caf\xe9-client/1.0")
	if r := alice.do(req); r.StatusCode != http.StatusOK {
		t.Errorf("a Latin-1 user agent: %d", r.StatusCode)
	}
	// A whole sign-in with such a user agent works and is audited.
	latin := p.browser()
	latin.client.Transport = uaTransport{"caf\xe9-client/1.0"}
	latin.signIn("bob@example.org")
	if n := p.count(`SELECT count(*) FROM audit_events WHERE action = 'user.signed_in' AND user_agent LIKE 'caf%'`); n != 1 {
		t.Errorf("%d audited sign-ins with the odd user agent, want 1", n)
	}
}

type uaTransport struct{ ua string }

func (u uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}

// TestHTTPSPortal: behind TLS, every response asks for HTTPS next time, and
// the session cookie has the __Host- prefix (Secure, for / and without a
// Domain, which is what the prefix makes browsers demand), so a sibling
// subdomain can neither set nor overwrite it. Signing in and out works with
// it.
func TestHTTPSPortal(t *testing.T) {
	t.Parallel()
	idp := startMockIdP(t)
	p := newPortal(t, portalOptions{tls: true, issuer: idp.m.Issuer(), clientID: idp.m.ClientID, clientSecret: idp.m.ClientSecret})
	b := p.browser()
	if r := b.get("/"); !strings.Contains(r.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("no HSTS behind TLS: %q", r.Header.Get("Strict-Transport-Security"))
	}
	idp.m.QueueUser(&mockoidc.MockUser{Subject: "s-tls", Email: "alice@example.org", EmailVerified: true})
	r := b.noFollow().get("/login")
	checkCookies := func(step string, cookies []*http.Cookie) {
		t.Helper()
		if len(cookies) == 0 {
			t.Fatalf("%s set no cookie to check", step)
		}
		for _, c := range cookies {
			if c.Name != "__Host-portal_session" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" ||
				c.SameSite != http.SameSiteLaxMode {
				t.Errorf("%s set cookie %s (Secure %t, HttpOnly %t, Path %q, Domain %q, SameSite %d); want __Host-portal_session, "+
					"Secure, HttpOnly, Path /, no Domain, Lax", step, c.Name, c.Secure, c.HttpOnly, c.Path, c.Domain, c.SameSite)
			}
		}
	}
	checkCookies("/login", r.Cookies())
	r = b.noFollow().get(r.Header.Get("Location")) // the provider
	r = b.noFollow().get(r.Header.Get("Location")) // the callback
	checkCookies("the sign-in callback", r.Cookies())
	r = b.get(r.Header.Get("Location"))
	if r.Request.URL.Path != "/dashboard" || !strings.Contains(r.Body, "Sign out") {
		t.Fatalf("sign-in over https ended at %s (%d)", r.Request.URL, r.StatusCode)
	}
	r = b.post("/logout", url.Values{"csrf": {csrfToken(t, r.Body)}})
	if r.Request.URL.Path != "/" || strings.Contains(r.Body, "Sign out") {
		t.Errorf("sign-out over https: %s (%d)", r.Request.URL, r.StatusCode)
	}
}

func TestStaticFilesAreCached(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	home := b.get("/")
	m := regexp.MustCompile(`href="(/static/style\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(home.Body)
	if m == nil {
		t.Fatalf("no versioned stylesheet link on the page:\n%s", home.Body)
	}
	r := b.get(m[1])
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Errorf("versioned stylesheet: %d %v", r.StatusCode, r.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, p.URL+m[1], nil)
	req.Header.Set("If-None-Match", r.Header.Get("ETag"))
	if r := b.do(req); r.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", r.StatusCode)
	}
	if r := b.get("/static/style.css"); !strings.Contains(r.Header.Get("Cache-Control"), "max-age=300") {
		t.Errorf("unversioned stylesheet: Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	if r := b.get("/static/nope.css"); r.StatusCode != http.StatusNotFound {
		t.Errorf("missing static file: %d", r.StatusCode)
	}
}

func TestProbesAndMetrics(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	if r := b.get("/healthz"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"status":"ok"`) {
		t.Errorf("/healthz: %d %s", r.StatusCode, r.Body)
	}
	if r := b.get("/readyz"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"status":"ready"`) {
		t.Errorf("/readyz on a migrated database: %d %s", r.StatusCode, r.Body)
	}
	b.get("/")
	b.get("/requests/12345")
	r := b.get("/metrics")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", r.StatusCode)
	}
	for _, want := range []string{
		`portal_http_requests_total{method="GET",route="/",status="200"} 1`,
		`route="/requests/:id"`, // by route pattern, never the path with its ID
		"portal_http_request_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(r.Body, "12345") {
		t.Error("/metrics labels hold a path with an ID")
	}
}

func TestCSRFTokenRequired(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.signedIn("alice@example.org")
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

// scriptTag matches a script element's start tag: the CSP would refuse
// one without a src, and the portal loads its one script as a file.
var scriptTag = regexp.MustCompile(`<script\b[^>]*>`)

// hasInlineScript reports whether page holds a script element without src.
func hasInlineScript(page string) bool {
	for _, tag := range scriptTag.FindAllString(page, -1) {
		if !strings.Contains(tag, " src=") {
			return true
		}
	}
	return false
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
		if hasInlineScript(r.Body) || strings.Contains(r.Body, "style=") {
			t.Errorf("%s: inline script or style in the page", path)
		}
	}
}

func TestRequestBodiesAreLimited(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	r := alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"},
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
