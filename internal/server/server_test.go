package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/notify"
	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

func TestErrorPagesKeepDetailsOut(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	b.signIn("alice@example.org")
	r := b.get("/requests/not-a-number")
	if r.StatusCode != http.StatusNotFound || !strings.Contains(r.Body, "Alice Example") || !strings.Contains(r.Body, "Request ") {
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
	form := alice.get("/requests/new")
	key := "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	r := alice.post("/requests", url.Values{"csrf": {csrfToken(t, form.Body)}, "cluster": {"awi-ciroh"},
		"public_key": {key}, "justification": {"Dashboards\x00 for the team."}})
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

// TestHTTPSPortal: behind TLS, every response asks for HTTPS next time and
// the cookies are Secure.
func TestHTTPSPortal(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("https://credentials.example.org")
	st := store.New(pgtest.New(t))
	log := slog.New(slog.DiscardHandler)
	srv, err := New(Config{BaseURL: base, Version: "test", Sessions: SessionConfig{IdleTimeout: time.Hour, Lifetime: time.Hour}},
		st, workflow.New(st, workflow.Options{}), oidc.New(oidc.Config{Issuer: "https://idp.example"}, log), notify.New(st.Pool(), log), log)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://credentials.example.org/", nil))
	if h := rec.Header().Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") {
		t.Errorf("no HSTS behind TLS: %q", h)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) == 0 {
		t.Fatal("the start page set no cookie to check")
	}
	for _, c := range cookies {
		if !c.Secure || !c.HttpOnly {
			t.Errorf("cookie %s is not Secure and HttpOnly behind TLS", c.Name)
		}
	}
}
