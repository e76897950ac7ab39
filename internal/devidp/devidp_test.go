package devidp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

const (
	testClientID = "portal"
	// Characters that must survive form-encoding inside HTTP Basic auth.
	testClientSecret = "s3cret/with+special=chars&%"
)

// testClient is a portal signing people in through a Provider served on a
// loopback httptest server.
type testClient struct {
	base     string
	oidc     *oidc.Provider
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
	// browser does not follow redirects, so that the test can read the
	// redirect to the portal's callback.
	browser *http.Client
}

// serve starts a Provider at a fresh loopback address and discovers it.
func serve(t *testing.T) *testClient {
	t.Helper()
	return serveFor(t, "")
}

// serveFor is serve with the provider on a listener of its own
// (NewStandalone) for a portal at portalBase; "" puts them on one origin (New).
func serveFor(t *testing.T, portalBase string) *testClient {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	var p *Provider
	var err error
	if portalBase == "" {
		portalBase = base
		p, err = New(base, testClientID, testClientSecret)
	} else {
		p, err = NewStandalone(base, portalBase, testClientID, testClientSecret)
	}
	if err != nil {
		t.Fatalf("New(%q): %v", base, err)
	}
	srv.Config.Handler = p.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	if got, want := p.Issuer(), base+"/oidc"; got != want {
		t.Fatalf("Issuer() = %q, want %q", got, want)
	}
	op, err := oidc.NewProvider(t.Context(), p.Issuer())
	if err != nil {
		t.Fatalf("discover %s: %v", p.Issuer(), err)
	}
	return &testClient{
		base: base,
		oidc: op,
		conf: oauth2.Config{
			ClientID:     testClientID,
			ClientSecret: testClientSecret,
			Endpoint:     op.Endpoint(),
			RedirectURL:  portalBase + "/auth/callback",
			Scopes:       []string{oidc.ScopeOpenID, "email", "profile", "groups"},
		},
		verifier: op.Verifier(&oidc.Config{ClientID: testClientID}),
		browser: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
}

// claims are the ID token claims the portal relies on.
type claims struct {
	Subject       string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Groups        []string `json:"groups"`
}

func claimsOf(id Identity) claims {
	return claims{Subject: id.Subject(), Email: id.Email, EmailVerified: true, Name: id.Name, Groups: id.Groups}
}

// checkClaims fails the test if got, the claims in what, are not want. It
// only reports, so that goroutines may call it.
func checkClaims(t *testing.T, what string, got, want claims) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// attempt is what the portal keeps between sending someone to the provider
// and receiving the code.
type attempt struct {
	state, nonce, verifier string
}

func newAttempt() attempt {
	return attempt{state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier()}
}

func (c *testClient) authURL(a attempt, opts ...oauth2.AuthCodeOption) string {
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier)}, opts...)
	return c.conf.AuthCodeURL(a.state, opts...)
}

// code requests u as a browser would and returns the authorization code the
// provider sends to the redirect URI.
func (c *testClient) code(ctx context.Context, a attempt, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.browser.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		body, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("GET %s: %s, want a redirect:\n%s", u, resp.Status, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", err
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != c.conf.RedirectURL {
		return "", fmt.Errorf("redirected to %s, want %s", loc, c.conf.RedirectURL)
	}
	if got := loc.Query().Get("state"); got != a.state {
		return "", fmt.Errorf("state = %q, want %q", got, a.state)
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", fmt.Errorf("redirect %s has no code", loc)
	}
	return code, nil
}

// exchange redeems code and returns the verified ID token's claims and the
// tokens.
func (c *testClient) exchange(ctx context.Context, a attempt, code string, opts ...oauth2.AuthCodeOption) (claims, *oauth2.Token, error) {
	tok, err := c.conf.Exchange(ctx, code, opts...)
	if err != nil {
		return claims{}, nil, fmt.Errorf("exchange code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return claims{}, nil, errors.New("token response has no id_token")
	}
	idToken, err := c.verifier.Verify(ctx, raw)
	if err != nil {
		return claims{}, nil, fmt.Errorf("verify ID token: %w", err)
	}
	if idToken.Nonce != a.nonce {
		return claims{}, nil, fmt.Errorf("nonce = %q, want %q", idToken.Nonce, a.nonce)
	}
	var cl claims
	if err := idToken.Claims(&cl); err != nil {
		return claims{}, nil, fmt.Errorf("decode ID token claims: %w", err)
	}
	return cl, tok, nil
}

// signIn runs the whole authorization code flow with login_hint set to email.
func (c *testClient) signIn(ctx context.Context, email string) (claims, *oauth2.Token, error) {
	a := newAttempt()
	code, err := c.code(ctx, a, c.authURL(a, oauth2.SetAuthURLParam("login_hint", email)))
	if err != nil {
		return claims{}, nil, err
	}
	return c.exchange(ctx, a, code, oauth2.VerifierOption(a.verifier))
}

func TestSignInWithLoginHint(t *testing.T) {
	c := serve(t)
	sam := claimsOf(DemoIdentities()[2])
	if diff := cmp.Diff([]string{"2i2c-staff"}, sam.Groups); diff != "" {
		t.Fatalf("Sam's groups (-want +got):\n%s", diff)
	}

	tests := []struct {
		name  string
		style oauth2.AuthStyle
	}{
		{"client credentials in form", oauth2.AuthStyleInParams},
		{"client credentials in basic auth", oauth2.AuthStyleInHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *c
			c.conf.Endpoint.AuthStyle = tt.style

			got, tok, err := c.signIn(t.Context(), "sam@2i2c.org")
			if err != nil {
				t.Fatal(err)
			}
			checkClaims(t, "ID token claims", got, sam)

			info, err := c.oidc.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var infoClaims claims
			if err := info.Claims(&infoClaims); err != nil {
				t.Fatalf("decode userinfo: %v", err)
			}
			checkClaims(t, "userinfo", infoClaims, sam)
		})
	}
}

// TestStandaloneRedirectsToThePortal: a provider on its own listener, as
// the load test runs it, signs people in to the portal's origin and to no
// other, not even its own.
func TestStandaloneRedirectsToThePortal(t *testing.T) {
	portalBase := "http://127.0.0.1:1" // never reached: the test reads the redirect
	c := serveFor(t, portalBase)
	got, _, err := c.signIn(t.Context(), "sam@2i2c.org")
	if err != nil {
		t.Fatal(err)
	}
	checkClaims(t, "ID token claims", got, claimsOf(DemoIdentities()[2]))

	u, err := url.Parse(c.authURL(newAttempt(), oauth2.SetAuthURLParam("login_hint", "sam@2i2c.org")))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("redirect_uri", c.base+"/auth/callback")
	u.RawQuery = q.Encode()
	page := c.page(t, u.String(), http.StatusBadRequest)
	if got, want := textOf(page), "is not on "+portalBase; !strings.Contains(got, want) {
		t.Errorf("page says %q, want it to contain %q", got, want)
	}
}

func TestScopesReleaseClaims(t *testing.T) {
	c := serve(t)
	sam := DemoIdentities()[2]

	tests := []struct {
		name   string
		scopes []string
		want   claims
	}{
		{"openid", []string{"openid"}, claims{Subject: sam.Subject()}},
		{"email", []string{"openid", "email"}, claims{Subject: sam.Subject(), Email: sam.Email, EmailVerified: true}},
		{"profile", []string{"openid", "profile"}, claims{Subject: sam.Subject(), Name: sam.Name}},
		{"groups", []string{"openid", "groups"}, claims{Subject: sam.Subject(), Groups: sam.Groups}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *c
			c.conf.Scopes = tt.scopes
			got, _, err := c.signIn(t.Context(), sam.Email)
			if err != nil {
				t.Fatal(err)
			}
			checkClaims(t, "claims", got, tt.want)
		})
	}
}

func TestDiscovery(t *testing.T) {
	c := serve(t)
	var doc struct {
		Issuer           string   `json:"issuer"`
		AuthorizationURL string   `json:"authorization_endpoint"`
		TokenURL         string   `json:"token_endpoint"`
		JWKSURL          string   `json:"jwks_uri"`
		UserinfoURL      string   `json:"userinfo_endpoint"`
		SigningAlgs      []string `json:"id_token_signing_alg_values_supported"`
		ChallengeMethods []string `json:"code_challenge_methods_supported"`
	}
	if err := c.oidc.Claims(&doc); err != nil {
		t.Fatal(err)
	}
	issuer := c.base + "/oidc"
	for _, check := range []struct{ name, got, want string }{
		{"issuer", doc.Issuer, issuer},
		{"authorization_endpoint", doc.AuthorizationURL, issuer + "/authorize"},
		{"token_endpoint", doc.TokenURL, issuer + "/token"},
		{"jwks_uri", doc.JWKSURL, issuer + "/.well-known/jwks.json"},
		{"userinfo_endpoint", doc.UserinfoURL, issuer + "/userinfo"},
		{"id_token_signing_alg_values_supported", strings.Join(doc.SigningAlgs, " "), "RS256"},
		{"code_challenge_methods_supported", strings.Join(doc.ChallengeMethods, " "), "S256"},
	} {
		if check.got != check.want {
			t.Errorf("%s = %q, want %q", check.name, check.got, check.want)
		}
	}
}

func TestSignInPage(t *testing.T) {
	c := serve(t)
	alice, bob, sam := DemoIdentities()[0], DemoIdentities()[1], DemoIdentities()[2]

	tests := []struct {
		name   string
		choose func(t *testing.T, page *html.Node) string // the URL the person goes to
		want   claims
	}{
		{
			name: "demo identity",
			choose: func(t *testing.T, page *html.Node) string {
				return c.resolve(t, linkTo(t, page, bob.Email))
			},
			want: claimsOf(bob),
		},
		{
			name: "another identity",
			choose: func(t *testing.T, page *html.Node) string {
				return c.submit(t, page, url.Values{"login_hint": {"Carol@Example.net"}, "name": {" Carol Typed "}})
			},
			want: claimsOf(Identity{Email: "carol@example.net", Name: "Carol Typed"}),
		},
		{
			name: "another identity without a name",
			choose: func(t *testing.T, page *html.Node) string {
				return c.submit(t, page, url.Values{"login_hint": {"dana@example.net"}})
			},
			want: claimsOf(Identity{Email: "dana@example.net"}),
		},
		{
			name: "demo identity typed",
			choose: func(t *testing.T, page *html.Node) string {
				return c.submit(t, page, url.Values{"login_hint": {alice.Email}, "name": {"Not Alice"}})
			},
			want: claimsOf(alice),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAttempt()
			page := c.page(t, c.authURL(a), http.StatusOK)

			for _, id := range []Identity{alice, bob, sam} {
				linkTo(t, page, id.Email)
			}
			if forms := findAll(page, element("form")); len(forms) != 1 {
				t.Fatalf("page has %d forms, want 1", len(forms))
			}

			code, err := c.code(t.Context(), a, tt.choose(t, page))
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := c.exchange(t.Context(), a, code, oauth2.VerifierOption(a.verifier))
			if err != nil {
				t.Fatal(err)
			}
			checkClaims(t, "claims", got, tt.want)
		})
	}
}

func TestAuthorizationRequestRejected(t *testing.T) {
	c := serve(t)

	tests := []struct {
		name        string
		change      func(q url.Values)
		wantText    string
		wantChooser bool
	}{
		{
			name:        "login_hint not an email address",
			change:      func(q url.Values) { q.Set("login_hint", "alice.example.org") },
			wantText:    `login_hint "alice.example.org" is not an email address`,
			wantChooser: true,
		},
		{
			name:        "login_hint with a display name",
			change:      func(q url.Values) { q.Set("login_hint", "Alice <alice@example.org>") },
			wantText:    "must be a bare email address",
			wantChooser: true,
		},
		{
			name:     "no PKCE",
			change:   func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") },
			wantText: "PKCE is required",
		},
		{
			name:     "plain PKCE",
			change:   func(q url.Values) { q.Set("code_challenge_method", "plain") },
			wantText: "PKCE is required",
		},
		{
			name:     "redirect_uri on another origin",
			change:   func(q url.Values) { q.Set("redirect_uri", "http://attacker.example/auth/callback") },
			wantText: `redirect_uri "http://attacker.example/auth/callback" is not on`,
		},
		{
			name:     "unknown client",
			change:   func(q url.Values) { q.Set("client_id", "someone-else") },
			wantText: `unknown client_id "someone-else"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(c.authURL(newAttempt(), oauth2.SetAuthURLParam("login_hint", "sam@2i2c.org")))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			tt.change(q)
			u.RawQuery = q.Encode()

			page := c.page(t, u.String(), http.StatusBadRequest)
			if got := textOf(page); !strings.Contains(got, tt.wantText) {
				t.Errorf("page says %q, want it to contain %q", got, tt.wantText)
			}
			if got := len(findAll(page, element("form"))) == 1; got != tt.wantChooser {
				t.Errorf("page offers the chooser: %t, want %t", got, tt.wantChooser)
			}
		})
	}
}

func TestPKCEEnforced(t *testing.T) {
	c := serve(t)

	tests := []struct {
		name string
		opts []oauth2.AuthCodeOption
	}{
		{"wrong verifier", []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.GenerateVerifier())}},
		{"no verifier", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAttempt()
			code, err := c.code(t.Context(), a, c.authURL(a, oauth2.SetAuthURLParam("login_hint", "alice@example.org")))
			if err != nil {
				t.Fatal(err)
			}
			var re *oauth2.RetrieveError
			if _, _, err := c.exchange(t.Context(), a, code, tt.opts...); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("exchange = %v, want an invalid_grant error", err)
			}
			// The failed attempt spends the code.
			if _, _, err := c.exchange(t.Context(), a, code, oauth2.VerifierOption(a.verifier)); err == nil {
				t.Fatal("exchange with the right verifier after a failed attempt succeeded, want the code spent")
			}
		})
	}
}

func TestNewRefusesBaseURL(t *testing.T) {
	const notLoopback = "is not a loopback address"
	tests := []struct {
		baseURL string
		wantErr string // in the error; empty if New accepts baseURL
	}{
		{"http://127.0.0.1:8080", ""},
		{"http://127.1.2.3:8080/", ""},
		{"http://localhost:8080", ""},
		{"http://LOCALHOST", ""},
		{"http://[::1]:8080", ""},
		{"http://example.org:8080", notLoopback},
		{"http://10.0.0.1:8080", notLoopback},
		{"http://0.0.0.0:8080", notLoopback},
		{"http://[::]:8080", notLoopback},
		{"http://localhost.example.org:8080", notLoopback},
		{"https://127.0.0.1:8443", "scheme must be http"},
		{"http://127.0.0.1:8080/portal", "http://host[:port]"},
		{"http://127.0.0.1:8080?x=1", "http://host[:port]"},
		{"http://user@127.0.0.1:8080", "http://host[:port]"},
		{"127.0.0.1:8080", `base URL "127.0.0.1:8080"`},
		{"", "scheme must be http"},
	}
	for _, tt := range tests {
		t.Run(tt.baseURL, func(t *testing.T) {
			p, err := New(tt.baseURL, testClientID, testClientSecret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%q) error = %v, want one saying %q", tt.baseURL, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.baseURL, err)
			}
			if !strings.HasSuffix(p.Issuer(), "/oidc") {
				t.Errorf("Issuer() = %q, want it to end in /oidc", p.Issuer())
			}
		})
	}
}

func TestNewRefusesEmptyClientCredentials(t *testing.T) {
	tests := []struct{ name, id, secret string }{
		{"no client ID", "", testClientSecret},
		{"no client secret", testClientID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New("http://127.0.0.1:8080", tt.id, tt.secret); err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestConcurrentSignInsKeepIdentitiesApart(t *testing.T) {
	c := serve(t)
	ids := DemoIdentities()

	var wg sync.WaitGroup
	for i := range 20 {
		id := ids[i%len(ids)]
		wg.Go(func() {
			got, _, err := c.signIn(t.Context(), id.Email)
			if err != nil {
				t.Errorf("sign-in %d as %s: %v", i, id.Email, err)
				return
			}
			checkClaims(t, fmt.Sprintf("sign-in %d as %s: claims", i, id.Email), got, claimsOf(id))
		})
	}
	wg.Wait()
}

func TestRejectedRequestLeavesNoIdentityBehind(t *testing.T) {
	c := serve(t)

	// The request passes the provider's own checks, so the identity is
	// queued, but mockoidc refuses the scope.
	a := newAttempt()
	u := c.authURL(a, oauth2.SetAuthURLParam("login_hint", "sam@2i2c.org"), oauth2.SetAuthURLParam("scope", "openid admin"))
	if _, err := c.code(t.Context(), a, u); err == nil {
		t.Fatal("authorization with an unsupported scope succeeded, want it refused")
	}

	alice := DemoIdentities()[0]
	got, _, err := c.signIn(t.Context(), alice.Email)
	if err != nil {
		t.Fatal(err)
	}
	checkClaims(t, "claims", got, claimsOf(alice))
}

func TestSubjectStableAcrossProviders(t *testing.T) {
	first, second := serve(t), serve(t)
	if first.base == second.base {
		t.Fatalf("both providers at %s", first.base)
	}

	a, _, err := first.signIn(t.Context(), "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := second.signIn(t.Context(), "Alice@Example.ORG")
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != b.Subject {
		t.Errorf("subjects differ: %q and %q", a.Subject, b.Subject)
	}
	if want := (Identity{Email: "alice@example.org"}).Subject(); a.Subject != want {
		t.Errorf("subject = %q, want %q", a.Subject, want)
	}
}

// page requests the sign-in page at u, checks its status and that it needs
// neither script nor style, and parses it.
func (c *testClient) page(t *testing.T, u string, wantStatus int) *html.Node {
	t.Helper()
	resp, err := c.browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s, want %d:\n%s", u, resp.Status, wantStatus, body)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", got)
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'none'", got)
	}
	doc, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatalf("parse sign-in page: %v", err)
	}

	const title = "Development sign-in — not for production"
	if got := findAll(doc, element("h1")); len(got) != 1 || textOf(got[0]) != title {
		t.Errorf("page heading is not %q", title)
	}
	if got := findAll(doc, func(n *html.Node) bool {
		return element("script")(n) || element("style")(n) || attr(n, "style") != "" || strings.HasPrefix(attr(n, "href"), "javascript:")
	}); len(got) > 0 {
		t.Errorf("page has %d script or style elements or attributes, want none", len(got))
	}
	return doc
}

// resolve returns ref, relative to the provider's base URL, as absolute.
func (c *testClient) resolve(t *testing.T, ref string) string {
	t.Helper()
	base, err := url.Parse(c.base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := base.Parse(ref)
	if err != nil {
		t.Fatalf("parse %q: %v", ref, err)
	}
	return u.String()
}

// submit fills in the page's form with fields, as a browser would submit it,
// and returns the URL it submits to.
func (c *testClient) submit(t *testing.T, page *html.Node, fields url.Values) string {
	t.Helper()
	forms := findAll(page, element("form"))
	if len(forms) != 1 {
		t.Fatalf("page has %d forms, want 1", len(forms))
	}
	form := forms[0]
	if method := attr(form, "method"); !strings.EqualFold(method, "get") {
		t.Fatalf("form method = %q, want get", method)
	}
	q := url.Values{}
	for _, input := range findAll(form, element("input")) {
		name := attr(input, "name")
		switch {
		case name == "":
		case fields.Has(name):
			q[name] = fields[name]
		default:
			q.Add(name, attr(input, "value"))
		}
	}
	for name := range fields {
		if !q.Has(name) {
			t.Fatalf("form has no %q field", name)
		}
	}
	return c.resolve(t, attr(form, "action")+"?"+q.Encode())
}

// linkTo returns the href of the page's one link whose text mentions s.
func linkTo(t *testing.T, page *html.Node, s string) string {
	t.Helper()
	links := findAll(page, func(n *html.Node) bool {
		return element("a")(n) && strings.Contains(textOf(n), s)
	})
	if len(links) != 1 {
		t.Fatalf("page has %d links mentioning %q, want 1", len(links), s)
	}
	return attr(links[0], "href")
}

func element(tag string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == tag }
}

func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var found []*html.Node
	for d := range n.Descendants() {
		if match(d) {
			found = append(found, d)
		}
	}
	return found
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
