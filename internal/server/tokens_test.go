package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// makeToken makes a token in b's session through the API and returns it
// and its ID.
func (b *browser) makeToken(name string, scopes ...string) (string, int64) {
	b.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "scopes": scopes})
	r := b.apiPost("/api/v1/tokens", string(body))
	var out struct {
		ID    int64
		Token string
	}
	if err := json.Unmarshal([]byte(r.Body), &out); err != nil || r.StatusCode != http.StatusCreated || out.Token == "" {
		b.t.Fatalf("new token: %d %s", r.StatusCode, r.Body)
	}
	return out.Token, out.ID
}

// script is a program calling the API with a token: no cookie jar, no
// Origin, no Sec-Fetch-Site, no CSRF token, as curl sends it.
type script struct {
	t     testing.TB
	p     *testPortal
	token string
}

func (p *testPortal) script(token string) *script { return &script{t: p.t, p: p, token: token} }

// call sends method path with body (JSON when not empty) and the token.
func (sc *script) call(method, path, body string) response {
	sc.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, sc.p.URL+path, rd)
	if err != nil {
		sc.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sc.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := sc.p.ts.Client().Do(req)
	if err != nil {
		sc.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
		sc.t.Errorf("%s %s with a token set cookies %q: a bearer request never starts a session", method, path, c)
	}
	return response{resp, string(b)}
}

// newRequestBody is the JSON of a new request for cluster.
func newRequestBody(t testing.TB, cluster string) string {
	b, _ := json.Marshal(map[string]string{"cluster": cluster, "public_key": newKey(t).Recipient().String(),
		"justification": "Dashboards for the research team."})
	return string(b)
}

// TestReadTokenListsButCannotRequest: a read token lists the owner's
// requests with no cookie, and its POST is refused with 403 naming the
// request scope; no call starts a session.
func TestReadTokenListsButCannotRequest(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	id := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	token, _ := alice.makeToken("dashboard check", "read")
	sessions := p.count(`SELECT count(*) FROM sessions`)

	bot := p.script(token)
	r := bot.call(http.MethodGet, "/api/v1/requests", "")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, fmt.Sprintf(`"id":%d`, id)) {
		t.Fatalf("GET /api/v1/requests with a read token: %d %s", r.StatusCode, r.Body)
	}
	r = bot.call(http.MethodPost, "/api/v1/requests", newRequestBody(t, "awi-ciroh"))
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "lacks the request scope") {
		t.Errorf("POST /api/v1/requests with a read token: %d %s, want 403 naming the request scope", r.StatusCode, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 1 {
		t.Errorf("%d requests, want the one made in the browser", n)
	}
	if n := p.count(`SELECT count(*) FROM sessions`); n != sessions {
		t.Errorf("%d sessions after the token's calls, want %d", n, sessions)
	}
}

// TestRequestTokenCreatesRequestWithoutOriginOrCSRF: a script with a
// request token makes a request with neither an Origin header nor a CSRF
// token, and the audit event names alice and the token's ID, never the
// token.
func TestRequestTokenCreatesRequestWithoutOriginOrCSRF(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	token, tokenID := alice.makeToken("renewal job", "read", "request")
	r := p.script(token).call(http.MethodPost, "/api/v1/requests", newRequestBody(t, "awi-ciroh"))
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/requests with a request token: %d %s", r.StatusCode, r.Body)
	}
	var actor, details string
	if err := p.Store.Pool().QueryRow(t.Context(), `SELECT actor, details::text FROM audit_events WHERE action = 'request.created'`).Scan(&actor, &details); err != nil {
		t.Fatal(err)
	}
	if actor != "alice@example.org" || !strings.Contains(details, fmt.Sprintf(`"token_id": %d`, tokenID)) {
		t.Errorf("request.created by %q with %s, want alice with token_id %d", actor, details, tokenID)
	}
	p.assertSecretNowhere(t, token)
}

// TestCustomerTokenWithDecideIsRefused: a customer asking for a token with
// decide (or admin) is refused at creation, with the reason, and no token
// is made.
func TestCustomerTokenWithDecideIsRefused(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	for _, scope := range []string{"decide", "admin"} {
		r := alice.apiPost("/api/v1/tokens", `{"name": "queue bot", "scopes": ["read", "`+scope+`"]}`)
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "staff may give a token the "+scope+" scope") {
			t.Errorf("a customer's token with %s: %d %s, want 403 saying only staff", scope, r.StatusCode, r.Body)
		}
	}
	if n := p.count(`SELECT count(*) FROM api_tokens`); n != 0 {
		t.Errorf("%d tokens made, want none", n)
	}
}

// TestStaffTokenDecideEndsWithStaffRole: sam's decide token approves while
// he is staff; once he is a customer (what his next sign-in records when
// the identity provider no longer makes him staff), the same token is
// refused at its next call, and the request stays pending.
func TestStaffTokenDecideEndsWithStaffRole(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	token, _ := sam.makeToken("queue bot", "read", "decide")
	bot := p.script(token)
	first := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	if r := bot.call(http.MethodPost, fmt.Sprintf("/api/v1/requests/%d/approve", first), `{"note": "ok"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("approve with sam's decide token: %d %s", r.StatusCode, r.Body)
	}

	second := bob.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	p.exec(`UPDATE users SET role = 'customer' WHERE email = 'sam@2i2c.org'`)
	r := bot.call(http.MethodPost, fmt.Sprintf("/api/v1/requests/%d/approve", second), `{"note": "ok"}`)
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "only while its owner is 2i2c staff") {
		t.Errorf("approve with the token of someone no longer staff: %d %s, want 403", r.StatusCode, r.Body)
	}
	var status string
	if err := p.Store.Pool().QueryRow(t.Context(), `SELECT status FROM requests WHERE id = $1`, second).Scan(&status); err != nil || status != "pending" {
		t.Errorf("the request is %s (%v), want pending", status, err)
	}
	// read still works: sam sees his own.
	if r := bot.call(http.MethodGet, "/api/v1/requests", ""); r.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/requests with read: %d %s", r.StatusCode, r.Body)
	}
}

// TestRevokedAndExpiredTokensGet401: a token revoked by its owner, one past
// its expiry and one the portal never made all get 401, each saying why,
// with WWW-Authenticate.
func TestRevokedAndExpiredTokensGet401(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	revoked, revokedID := alice.makeToken("old laptop", "read")
	expired, expiredID := alice.makeToken("last year's job", "read")
	if r := p.script(revoked).call(http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", revokedID), ""); r.StatusCode != http.StatusForbidden {
		t.Errorf("a read token revoking itself: %d %s, want 403 (it needs request)", r.StatusCode, r.Body)
	}
	req, _ := http.NewRequest(http.MethodDelete, alice.abs(fmt.Sprintf("/api/v1/tokens/%d", revokedID)), nil)
	if r := alice.do(req); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"state":"revoked"`) {
		t.Fatalf("DELETE /api/v1/tokens/%d: %d %s", revokedID, r.StatusCode, r.Body)
	}
	p.exec(`UPDATE api_tokens SET created_at = now() - interval '91 days', expires_at = now() - interval '1 day' WHERE id = $1`, expiredID)
	for _, tt := range []struct{ name, token, says string }{
		{"revoked", revoked, "was revoked"},
		{"expired", expired, "expired on"},
		{"unknown", portal.TokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAA", "knows no such token"},
		{"not a bearer token", "", "Authorization: Bearer"},
	} {
		sc := p.script(tt.token)
		r := sc.call(http.MethodGet, "/api/v1/requests", "")
		if tt.token == "" {
			req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/requests", nil)
			req.SetBasicAuth("alice", "secret")
			r = p.browser().do(req)
		}
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, tt.says) || r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s token: %d %s, want 401 saying %q with WWW-Authenticate", tt.name, r.StatusCode, r.Body, tt.says)
		}
	}
}

// TestTokenScopeMatrix is the authorization matrix of the API for tokens:
// every /api/v1 route has a scope, and a token of staff's with one scope
// gets through to exactly the routes of that scope (the workflow then
// answers, 404 for the missing objects asked for here), and a 403 naming the
// scope needed everywhere else.
func TestTokenScopeMatrix(t *testing.T) {
	t.Parallel()
	p, _, _, sam := newScene(t)
	for _, r := range p.Server.echo.Routes() {
		if strings.HasPrefix(r.Path, "/api/v1/") && !strings.HasSuffix(r.Path, "/*") && r.Path != webconfig.PublicationPath(":name") {
			if _, ok := p.Server.apiScopes[r.Method+" "+r.Path]; !ok {
				t.Errorf("%s %s has no scope: no token may call it", r.Method, r.Path)
			}
		}
	}
	tokens := map[portal.Scope]string{}
	for _, sc := range portal.Scopes() {
		tokens[sc], _ = sam.makeToken("only "+string(sc), string(sc))
	}
	fill := strings.NewReplacer(":id", "999999", ":name", "no-such-cluster")
	for key, need := range p.Server.apiScopes {
		method, path, _ := strings.Cut(key, " ")
		for have, token := range tokens {
			t.Run(fmt.Sprintf("%s %s with %s", method, path, have), func(t *testing.T) {
				body := ""
				if method != http.MethodGet && method != http.MethodDelete {
					body = "{}"
				}
				r := p.script(token).call(method, fill.Replace(path), body)
				refused := r.StatusCode == http.StatusForbidden && strings.Contains(r.Body, "lacks the "+string(need)+" scope")
				switch {
				case need == sessionOnly:
					if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "cannot make tokens") {
						t.Errorf("%d %s, want 403: a token cannot make tokens", r.StatusCode, r.Body)
					}
				case need == have && (refused || r.StatusCode == http.StatusUnauthorized):
					t.Errorf("%d %s, want the call let through", r.StatusCode, r.Body)
				case need != have && !refused:
					t.Errorf("%d %s, want 403 naming %s", r.StatusCode, r.Body, need)
				}
			})
		}
	}
}

var newTokenOnPage = regexp.MustCompile(`id="new-token">(portal-pat-[A-Za-z0-9_-]+)<`)

// TestTokensPageShowsTheTokenOnceAndRevokes: a token made on the Tokens
// page is shown in the answer and never again; the list shows its name,
// scopes and last use; the page's revoke button ends it.
func TestTokensPageShowsTheTokenOnceAndRevokes(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	if !strings.Contains(alice.get("/dashboard").Body, `href="/tokens"`) {
		t.Error("the navigation has no link to the Tokens page")
	}
	r := alice.submit("/tokens", "/tokens", url.Values{"name": {"grafana renewal"}, "scopes": {"read", "request"}, "expires_in_days": {"30"}})
	m := newTokenOnPage.FindStringSubmatch(r.Body)
	if r.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("new token from the page: %d\n%s", r.StatusCode, r.Body)
	}
	token := m[1]
	if r := p.script(token).call(http.MethodGet, "/api/v1/requests", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("the page's token: %d %s", r.StatusCode, r.Body)
	}
	page := alice.get("/tokens").Body
	if strings.Contains(page, token) {
		t.Error("the Tokens page shows the token again")
	}
	for _, want := range []string{"grafana renewal", "read, request", "from 127.0.0.1"} {
		if !strings.Contains(page, want) {
			t.Errorf("the Tokens page lacks %q", want)
		}
	}
	if r := alice.get("/api/v1/tokens"); !strings.Contains(r.Body, `"last_used_ip":"127.0.0.1"`) || strings.Contains(r.Body, token) {
		t.Errorf("GET /api/v1/tokens: %s", r.Body)
	}
	// A refused form keeps what was typed, and says why.
	r = alice.submit("/tokens", "/tokens", url.Values{"name": {"forever"}, "scopes": {"read"}, "expires_in_days": {"1000"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "from 1 to 365 days") || !strings.Contains(r.Body, `value="forever"`) {
		t.Errorf("a token of 1000 days: %d", r.StatusCode)
	}

	id := p.count(`SELECT id FROM api_tokens`)
	r = alice.submit("/tokens", fmt.Sprintf("/tokens/%d/revoke", id), nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "is revoked") {
		t.Fatalf("revoke from the page: %d", r.StatusCode)
	}
	if r := p.script(token).call(http.MethodGet, "/api/v1/requests", ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a revoked token: %d, want 401", r.StatusCode)
	}
	p.wantAudited(portal.ActionTokenCreated, 1)
	p.wantAudited(portal.ActionTokenRevoked, 1)
	p.assertSecretNowhere(t, token)
}

// TestStaffRevokeAnyonesToken: staff list a customer's tokens and revoke
// one, then all of them (someone who left: their role changes only at a
// sign-in that may never come); another customer cannot even see them.
func TestStaffRevokeAnyonesToken(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	token, id := alice.makeToken("ci", "read")
	cron, _ := alice.makeToken("cron", "read")
	aliceID := p.count(`SELECT id FROM users WHERE email = 'alice@example.org'`)
	del := func(b *browser, path string) response {
		req, _ := http.NewRequest(http.MethodDelete, b.abs(path), nil)
		return b.do(req)
	}
	one, all := fmt.Sprintf("/api/v1/tokens/%d", id), fmt.Sprintf("/api/v1/tokens?user=%d", aliceID)
	for _, path := range []string{one, all} {
		if r := del(bob, path); r.StatusCode != http.StatusNotFound {
			t.Errorf("bob: DELETE %s: %d %s, want 404", path, r.StatusCode, r.Body)
		}
	}
	if r := bob.get(all); r.StatusCode != http.StatusNotFound {
		t.Errorf("bob listing alice's tokens: %d, want 404", r.StatusCode)
	}
	if r := sam.get(all); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"name":"cron"`) {
		t.Errorf("staff listing alice's tokens: %d %s", r.StatusCode, r.Body)
	}
	if r := del(sam, one); r.StatusCode != http.StatusOK {
		t.Errorf("staff revoking alice's token: %d %s", r.StatusCode, r.Body)
	}
	if r := p.script(token).call(http.MethodGet, "/api/v1/requests", ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the token staff revoked: %d, want 401", r.StatusCode)
	}
	if r := del(sam, all); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"revoked":1`) {
		t.Errorf("staff revoking all of alice's tokens: %d %s, want the one left", r.StatusCode, r.Body)
	}
	if r := p.script(cron).call(http.MethodGet, "/api/v1/requests", ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a token after all were revoked: %d, want 401", r.StatusCode)
	}
	if r := del(alice, "/api/v1/tokens"); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("DELETE /api/v1/tokens naming nobody: %d %s, want 422", r.StatusCode, r.Body)
	}
	p.wantAudited(portal.ActionTokensRevoked, 1)
}

// TestTokenBudgets: a token looping on the API is slowed to its own budget
// (429) while another token of the same person goes on; a person making
// tokens in a loop is stopped at the eleventh.
func TestTokenBudgets(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	looping, _ := alice.makeToken("looping bot", "read")
	other, _ := alice.makeToken("cron job", "read")
	limited := 0
	for range 150 {
		r := p.script(looping).call(http.MethodGet, "/api/v1/tokens", "")
		if r.StatusCode == http.StatusTooManyRequests {
			limited++
			if !strings.Contains(r.Body, "This token has made many calls") {
				t.Fatalf("429 saying %s", r.Body)
			}
		}
	}
	if limited == 0 {
		t.Error("150 calls of one token in a loop, none refused")
	}
	if r := p.script(other).call(http.MethodGet, "/api/v1/tokens", ""); r.StatusCode != http.StatusOK {
		t.Errorf("another token of the same person: %d, want 200", r.StatusCode)
	}
	// Two made above; eight more pass, the eleventh in a row is refused.
	for i := range 8 {
		alice.makeToken(fmt.Sprintf("bot %d", i), "read")
	}
	if r := alice.apiPost("/api/v1/tokens", `{"name": "one too many", "scopes": ["read"]}`); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the eleventh token in a row: %d %s, want 429", r.StatusCode, r.Body)
	}
}
