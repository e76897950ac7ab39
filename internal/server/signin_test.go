package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/2i2c-org/credential-portal/internal/store"
)

func TestSignInAndOut(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()

	// Before sign-in: the start page offers sign-in; /login sets a session
	// holding the attempt, and sends the browser to the provider.
	if r := b.get("/"); !strings.Contains(r.Body, `href="/login"`) {
		t.Fatalf("start page has no sign-in link:\n%s", r.Body)
	}
	r := b.noFollow().get("/login?login_hint=alice@example.org")
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || loc.Path != "/oidc/authorize" {
		t.Fatalf("/login: %d to %s, want 302 to the provider", r.StatusCode, loc)
	}
	q := loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" ||
		q.Get("state") == "" || q.Get("login_hint") != "alice@example.org" {
		t.Errorf("authorization request lacks PKCE, nonce, state or login_hint: %v", q)
	}
	before := b.cookie("portal_session")
	if before == "" {
		t.Fatal("no session cookie before sign-in: state and nonce are not bound to the browser")
	}

	// The rest of the flow: provider, callback, landing page.
	r = b.get(loc.String())
	if r.Request.URL.Path != "/dashboard" || !strings.Contains(r.Body, "Alice Example") ||
		!strings.Contains(r.Body, `class="role role-customer"`) {
		t.Fatalf("after sign-in: %s, page:\n%s", r.Request.URL, r.Body)
	}
	after := b.cookie("portal_session")
	if after == "" || after == before {
		t.Errorf("session token before and after sign-in: %q, %q; want a new one", before, after)
	}

	// Sign out with the form's token; the old cookie is worth nothing.
	r = b.post("/logout", url.Values{"csrf": {csrfToken(t, r.Body)}})
	if r.Request.URL.Path != "/" || strings.Contains(r.Body, "Alice Example") {
		t.Fatalf("after sign-out: %s, page still names the user:\n%s", r.Request.URL, r.Body)
	}
	stolen := p.browser().noFollow()
	u, _ := url.Parse(p.URL)
	stolen.client.Jar.SetCookies(u, []*http.Cookie{{Name: "portal_session", Value: after}})
	r = stolen.get("/dashboard")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		t.Errorf("old session cookie after sign-out: %d %s, want a redirect to sign in", r.StatusCode, r.Header.Get("Location"))
	}
	if n := p.count(`SELECT count(*) FROM sessions WHERE token = $1`, store.SessionKey(after)); n != 0 {
		t.Errorf("the session row is still on the server after sign-out (%d rows)", n)
	}
	if n := p.count(`SELECT count(*) FROM user_sessions`); n != 0 {
		t.Errorf("%d session records after the only session signed out", n)
	}
}

func TestSignInAsStaffWithLoginHint(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	r := b.signIn("sam@2i2c.org")
	if !strings.Contains(r.Body, "Sam Staff") || !strings.Contains(r.Body, `class="role role-staff"`) {
		t.Fatalf("staff landing page:\n%s", r.Body)
	}
	if r := b.get("/staff"); r.StatusCode != http.StatusOK {
		t.Errorf("staff page for staff: %d", r.StatusCode)
	}
}

func TestCustomerOnStaffPageGets403(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.signedIn("bob@example.org")
	for _, path := range []string{"/staff", "/staff/anything"} {
		r := b.get(path)
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "staff only") {
			t.Errorf("customer on %s: %d, want 403 with an explanation", path, r.StatusCode)
		}
	}
}

func TestSignedOutVisitorIsSentToSignInAndBack(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	r := b.noFollow().get("/staff")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next=%2Fstaff" {
		t.Fatalf("signed-out /staff: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r = b.get("/login?next=%2Fstaff&login_hint=sam%402i2c.org")
	if !strings.HasPrefix(r.Request.URL.Path, "/staff/") || r.StatusCode != http.StatusOK {
		t.Errorf("after sign-in with next=/staff, landed on %s (%d)", r.Request.URL, r.StatusCode)
	}
	// An unknown path is a 404 for a signed-out visitor, not a sign-in prompt.
	if r := p.browser().noFollow().get("/no/such/page"); r.StatusCode != http.StatusNotFound ||
		!strings.Contains(r.Body, "Back to the start page") {
		t.Errorf("unknown page: %d, want the portal's 404 page", r.StatusCode)
	}
}

func TestNextIsOnlyHonouredForLocalPaths(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	for _, next := range []string{"https://evil.example", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "evil.example"} {
		r := p.browser().get("/login?login_hint=alice@example.org&next=" + url.QueryEscape(next))
		if r.Request.URL.Host != strings.TrimPrefix(p.URL, "http://") || r.Request.URL.Path != "/dashboard" {
			t.Errorf("next=%q took the browser to %s", next, r.Request.URL)
		}
	}
}

// TestNoOpenRedirectThroughEncodedSlashes performs the open redirect a
// percent-encoded path used to give: the Location a signed-in browser is
// sent to must never leave the portal, however next is encoded.
func TestNoOpenRedirectThroughEncodedSlashes(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.signedIn("alice@example.org").noFollow()
	for _, raw := range []string{
		"%2F%252F%2Fevil.example%2Fx%7C", // the reported attack: ends at ///evil.example/x%7C
		"%2F%252Fevil.example",
		"%2F%255Cevil.example",
		"%2F%2F%2Fevil.example",
		"%2F%5C%5Cevil.example",
		"%2F%09%2Fevil.example",
	} {
		r := b.get("/login?next=" + raw)
		loc := r.Header.Get("Location")
		target, err := url.Parse(loc)
		if r.StatusCode != http.StatusSeeOther || err != nil || target.Host != "" || strings.HasPrefix(loc, "//") ||
			strings.HasPrefix(loc, "/\\") || strings.ContainsAny(loc, "\\\t") {
			t.Errorf("next=%s: %d to %q, want a redirect within the portal", raw, r.StatusCode, loc)
		}
		// What a browser does with it: resolved against the portal, it stays there.
		base, _ := url.Parse(p.URL + "/login")
		if dest := base.ResolveReference(target); dest.Host != base.Host {
			t.Errorf("next=%s: a browser follows %q to %s", raw, loc, dest.Host)
		}
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"/dashboard":           "/dashboard",
		"/requests/7?tab=x":    "/requests/7?tab=x",
		"":                     "",
		"https://evil.example": "",
		"//evil.example":       "",
		"/\\evil.example":      "",
		"/%0d%0aSet-Cookie:x":  "/%0d%0aSet-Cookie:x",
		"/x\r\nLocation: y":    "",
		"dashboard":            "",
		"/%2F/evil.example/x|": "",
		"/%5Cevil.example":     "",
		"/%09/evil.example":    "",
	}
	for in, want := range tests {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWrongStateIsRefused(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	nf := b.noFollow()
	r := nf.get("/login?login_hint=alice@example.org")
	r = nf.get(r.Header.Get("Location")) // the provider answers with a redirect to the callback
	cb, _ := url.Parse(r.Header.Get("Location"))
	if cb.Path != "/auth/callback" {
		t.Fatalf("provider redirected to %s", cb)
	}
	q := cb.Query()
	q.Set("state", "forged-"+q.Get("state"))
	cb.RawQuery = q.Encode()
	r = nf.get(cb.String())
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("callback with a wrong state: %d, want 400", r.StatusCode)
	}
	if r := b.noFollow().get("/dashboard"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("after a wrong state the browser is signed in (%d)", r.StatusCode)
	}
	assertNoUsers(t, p)
}

func TestCallbackWithoutSignInAttempt(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	r := p.browser().get("/auth/callback?code=abc&state=xyz")
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.Body, "sign in again") {
		t.Errorf("callback out of the blue: %d", r.StatusCode)
	}
}

func TestAllowedEmailDomains(t *testing.T) {
	t.Parallel()
	policy := testPolicy
	policy.AllowedEmailDomains = []string{"2i2c.org"}
	p := newPortal(t, portalOptions{access: &policy})
	r := p.browser().get("/login?login_hint=alice@example.org")
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "not open to your account") {
		t.Errorf("sign-in from a domain not allowed: %d\n%s", r.StatusCode, r.Body)
	}
	assertNoUsers(t, p)
	p.browser().signIn("sam@2i2c.org")
}

// mockIdP is an external OIDC provider whose token answers a test may
// tamper with, to check that the portal refuses what does not verify.
type mockIdP struct {
	m *mockoidc.MockOIDC

	mu     sync.Mutex
	tamper func(claims jwt.MapClaims) *mockoidc.Keypair // returns the key to re-sign with
	seen   []string                                     // every token the provider handed out
}

func startMockIdP(t *testing.T) *mockIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		t.Fatal(err)
	}
	idp := &mockIdP{m: m}
	_ = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.TokenEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			var tr map[string]any
			if rec.Code == http.StatusOK && json.Unmarshal(body, &tr) == nil {
				body = idp.rewrite(t, tr)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return idp
}

func (idp *mockIdP) rewrite(t *testing.T, tr map[string]any) []byte {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	raw, _ := tr["id_token"].(string)
	if idp.tamper != nil && raw != "" {
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
			t.Errorf("parse ID token: %v", err)
		}
		signer := idp.tamper(claims)
		forged, err := signer.SignJWT(claims)
		if err != nil {
			t.Errorf("sign forged ID token: %v", err)
		}
		tr["id_token"] = forged
	}
	for _, k := range []string{"id_token", "access_token", "refresh_token"} {
		if s, ok := tr[k].(string); ok {
			idp.seen = append(idp.seen, s)
		}
	}
	b, _ := json.Marshal(tr)
	return b
}

func (idp *mockIdP) setTamper(f func(jwt.MapClaims) *mockoidc.Keypair) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.tamper = f
}

func (idp *mockIdP) portal(t *testing.T) *testPortal {
	t.Helper()
	return newPortal(t, portalOptions{issuer: idp.m.Issuer(), clientID: idp.m.ClientID, clientSecret: idp.m.ClientSecret})
}

// signInVia drives a sign-in through the external provider as user and
// returns the final response.
func (b *browser) signInVia(idp *mockIdP, user mockoidc.User) response {
	b.t.Helper()
	idp.m.QueueUser(user)
	return b.get("/login")
}

func TestForgedIDTokensAreRefused(t *testing.T) {
	t.Parallel()
	otherKey, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tamper func(idp *mockIdP) func(jwt.MapClaims) *mockoidc.Keypair
	}{
		{"wrong nonce", func(idp *mockIdP) func(jwt.MapClaims) *mockoidc.Keypair {
			return func(c jwt.MapClaims) *mockoidc.Keypair { c["nonce"] = "replayed-nonce"; return idp.m.Keypair }
		}},
		{"wrong audience", func(idp *mockIdP) func(jwt.MapClaims) *mockoidc.Keypair {
			return func(c jwt.MapClaims) *mockoidc.Keypair { c["aud"] = "another-client"; return idp.m.Keypair }
		}},
		{"expired", func(idp *mockIdP) func(jwt.MapClaims) *mockoidc.Keypair {
			return func(c jwt.MapClaims) *mockoidc.Keypair {
				c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
				c["exp"] = time.Now().Add(-time.Hour).Unix()
				return idp.m.Keypair
			}
		}},
		{"unknown signing key", func(idp *mockIdP) func(jwt.MapClaims) *mockoidc.Keypair {
			return func(jwt.MapClaims) *mockoidc.Keypair { return otherKey }
		}},
		{"wrong issuer", func(idp *mockIdP) func(jwt.MapClaims) *mockoidc.Keypair {
			return func(c jwt.MapClaims) *mockoidc.Keypair { c["iss"] = "https://evil.example"; return idp.m.Keypair }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := startMockIdP(t)
			p := idp.portal(t)
			idp.setTamper(tt.tamper(idp))
			b := p.browser()
			r := b.signInVia(idp, &mockoidc.MockUser{Subject: "s1", Email: "sam@2i2c.org", EmailVerified: true})
			if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, "could not be verified") {
				t.Errorf("%s: %d at %s\n%s", tt.name, r.StatusCode, r.Request.URL, r.Body)
			}
			if r := b.noFollow().get("/dashboard"); r.StatusCode != http.StatusSeeOther {
				t.Errorf("%s: the browser is signed in", tt.name)
			}
			assertNoUsers(t, p)
		})
	}
	// The same provider without tampering signs in: the refusals above are
	// about the token, not the set-up.
	idp := startMockIdP(t)
	r := idp.portal(t).browser().signInVia(idp, &mockoidc.MockUser{Subject: "s1", Email: "sam@2i2c.org", EmailVerified: true})
	if r.Request.URL.Path != "/staff/requests" || !strings.Contains(r.Body, "role-staff") {
		t.Errorf("untampered sign-in: %d at %s", r.StatusCode, r.Request.URL)
	}
}

func TestUnverifiedEmailInStaffDomainStaysCustomer(t *testing.T) {
	t.Parallel()
	idp := startMockIdP(t)
	p := idp.portal(t)
	r := p.browser().signInVia(idp, &mockoidc.MockUser{Subject: "imposter", Email: "boss@2i2c.org", EmailVerified: false})
	if !strings.Contains(r.Body, "role-customer") || strings.Contains(r.Body, "role-staff") {
		t.Fatalf("unverified 2i2c.org email: page\n%s", r.Body)
	}
	var role string
	if err := p.Store.Pool().QueryRow(context.Background(), `SELECT role FROM users WHERE subject = 'imposter'`).Scan(&role); err != nil || role != "customer" {
		t.Errorf("stored role %q, %v; want customer", role, err)
	}
}

func TestRoleIsRecomputedAtSignIn(t *testing.T) {
	t.Parallel()
	idp := startMockIdP(t)
	first := idp.portal(t)
	first.browser().signInVia(idp, &mockoidc.MockUser{Subject: "pat", Email: "pat@example.org", EmailVerified: true, Groups: []string{"2i2c-staff"}})
	// Pat leaves the staff group; the next sign-in makes them a customer.
	r := first.browser().signInVia(idp, &mockoidc.MockUser{Subject: "pat", Email: "pat@example.org", EmailVerified: true})
	if !strings.Contains(r.Body, "role-customer") {
		t.Errorf("after leaving the staff group, still staff:\n%s", r.Body)
	}
	var n int
	_ = first.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM users WHERE subject = 'pat'`).Scan(&n)
	if n != 1 {
		t.Errorf("%d user rows for one person", n)
	}
}

// TestNoSecretsInLogs captures every log line of a whole sign-in and sign-out
// and looks for the authorization code, the tokens and the cookie values.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	idp := startMockIdP(t)
	p := idp.portal(t)
	b := p.browser()
	nf := b.noFollow()

	idp.m.QueueUser(&mockoidc.MockUser{Subject: "s2", Email: "alice@example.org", EmailVerified: true})
	r := nf.get("/login")
	preSession := b.cookie("portal_session")
	r = nf.get(r.Header.Get("Location"))
	cb, _ := url.Parse(r.Header.Get("Location"))
	code, state := cb.Query().Get("code"), cb.Query().Get("state")
	r = b.get(cb.String())
	if r.Request.URL.Path != "/dashboard" {
		t.Fatalf("sign-in failed: %d at %s", r.StatusCode, r.Request.URL)
	}
	session, csrf := b.cookie("portal_session"), csrfToken(t, r.Body)
	b.post("/logout", url.Values{"csrf": {csrf}})

	logs := p.logs.String()
	if !strings.Contains(logs, `"msg":"signed in"`) {
		t.Fatalf("the captured logs miss the sign-in:\n%s", logs)
	}
	secrets := map[string]string{"code": code, "state": state, "session before": preSession,
		"session after": session, "csrf token": csrf}
	idp.mu.Lock()
	for i, tok := range idp.seen {
		secrets["token "+string(rune('0'+i))] = tok
	}
	idp.mu.Unlock()
	if len(idp.seen) < 2 {
		t.Fatalf("the provider handed out %d tokens; the test saw no ID token", len(idp.seen))
	}
	for what, s := range secrets {
		if s == "" {
			t.Errorf("%s is empty: the test did not capture it", what)
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("the %s appears in the logs", what)
		}
	}
}

func TestSignInUnavailableWhileProviderIsDown(t *testing.T) {
	t.Parallel()
	// Reserve an address, then free it: the provider is not there yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newPortal(t, portalOptions{issuer: "http://" + addr + "/oidc", clientID: "c", clientSecret: "s", noDiscover: true})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.OIDC.Run(ctx)

	r := p.browser().get("/login")
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.Body, "unavailable for now") {
		t.Fatalf("/login with the provider down: %d\n%s", r.StatusCode, r.Body)
	}
	if r := p.browser().get("/"); r.StatusCode != http.StatusOK {
		t.Errorf("the portal does not serve while the provider is down: %d", r.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), "identity provider unreachable") {
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say the provider is unreachable:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The provider comes up; the portal finds it without a restart.
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	deadline = time.Now().Add(10 * time.Second)
	for !p.OIDC.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the portal did not discover the provider after it came up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r = p.browser().noFollow().get("/login")
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "http://"+addr+"/oidc/authorize") {
		t.Errorf("/login after the provider came up: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
}

func TestProviderErrorOnCallback(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	nf := p.browser().noFollow()
	r := nf.get("/login")
	loc, _ := url.Parse(r.Header.Get("Location"))
	state := loc.Query().Get("state")
	r = nf.get("/auth/callback?error=access_denied&state=" + url.QueryEscape(state))
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, "access_denied") {
		t.Errorf("provider error: %d\n%s", r.StatusCode, r.Body)
	}
}

func assertNoUsers(t *testing.T, p *testPortal) {
	t.Helper()
	var n int
	if err := p.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d users were recorded by a refused sign-in", n)
	}
}

// TestTwoTabsSigningIn: sign-ins begun in two tabs of one browser both
// finish; the second does not spoil the first.
func TestTwoTabsSigningIn(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	nf := b.noFollow()
	first := nf.get("/login?login_hint=alice@example.org").Header.Get("Location")
	second := nf.get("/login?login_hint=alice@example.org&next=%2Frequests%2Fnew").Header.Get("Location")
	if first == "" || second == "" || first == second {
		t.Fatalf("two sign-ins: %q and %q", first, second)
	}
	if r := b.get(first); r.Request.URL.Path != "/dashboard" || !strings.Contains(r.Body, "Alice Example") {
		t.Fatalf("the first tab's sign-in: %d at %s", r.StatusCode, r.Request.URL)
	}
	// The second tab finishes too, and goes where it was asked to.
	if r := b.get(second); r.Request.URL.Path != "/requests/new" {
		t.Errorf("the second tab's sign-in ended at %s (%d)", r.Request.URL, r.StatusCode)
	}
}

func TestSignInIsRateLimited(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	nf := p.browser().noFollow()
	limited := 0
	for range 30 {
		if r := nf.get("/login"); r.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("30 sign-in starts in a row were never limited")
	}
	if r := nf.get("/auth/callback?state=x&code=y"); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the callback after the burst: %d, want 429 too", r.StatusCode)
	}
}

func TestSessionCookieFlags(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	r := p.browser().noFollow().get("/login")
	var found bool
	for _, c := range r.Cookies() {
		if c.Name == "portal_session" {
			found = true
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
				t.Errorf("session cookie on a loopback http portal: %+v; want HttpOnly, SameSite=Lax, not Secure", c)
			}
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
	for base, want := range map[string]bool{
		"http://localhost:8080": false, "http://127.0.0.1:8080": false, "http://[::1]:8080": false,
		"https://credentials.2i2c.org": true, "http://portal.internal:8080": true,
	} {
		u, _ := url.Parse(base)
		if got := secureCookies(u); got != want {
			t.Errorf("secureCookies(%s) = %v, want %v", base, got, want)
		}
	}
}

func TestSessionsEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sessions SessionConfig
		keepBusy bool // a request every so often, which an idle timeout forgives and a lifetime does not
	}{
		{"idle timeout", SessionConfig{IdleTimeout: time.Second, Lifetime: time.Hour}, false},
		{"absolute lifetime", SessionConfig{IdleTimeout: time.Hour, Lifetime: 1500 * time.Millisecond}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPortal(t, portalOptions{sessions: &tt.sessions})
			b := p.signedIn("alice@example.org")
			deadline := time.Now().Add(1700 * time.Millisecond)
			for tt.keepBusy && time.Now().Before(deadline) {
				b.get("/dashboard")
				time.Sleep(300 * time.Millisecond)
			}
			time.Sleep(time.Until(deadline))
			if r := b.noFollow().get("/dashboard"); r.StatusCode != http.StatusSeeOther {
				t.Errorf("after the %s: %d, want a redirect to sign in", tt.name, r.StatusCode)
			}
		})
	}
}
