// Package devidp is the OpenID Connect provider of `portal dev`: served from
// the portal's own listener under /oidc/, it signs in whoever the developer
// picks, without a password. Because it vouches for anyone, it refuses to run
// anywhere but on a loopback address.
package devidp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/2i2c-org/credential-portal/internal/loopback"
)

//go:embed signin.html
var templates embed.FS

// Parameters of the authorization request that choose the identity. The
// sign-in page adds them to the original request.
const (
	loginHintParam = "login_hint"
	nameParam      = "name"
)

// pageCSP allows nothing but same-origin form submissions: the sign-in page is
// plain HTML.
const pageCSP = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Provider is a development OpenID Connect provider. It is safe for
// concurrent use.
type Provider struct {
	oidc    *mockoidc.MockOIDC
	origin  *url.URL // scheme and host of the portal, where it redirects to
	page    *template.Template
	handler http.Handler

	// mu serialises the mockoidc handlers that touch its user queue or session
	// store. The queue is shared by all authorization requests, so a queued
	// user must be popped by the request that queued it; the store is a map
	// with no lock of its own.
	mu sync.Mutex
}

// New returns a provider for a portal reachable at baseURL (such as
// http://127.0.0.1:8080) whose only client has the given ID and secret. The
// issuer is baseURL + "/oidc". New returns an error if baseURL is not a plain
// http://host[:port] URL with a loopback host (127.0.0.0/8, ::1 or
// localhost), or if the client ID or secret is empty.
func New(baseURL, clientID, clientSecret string) (*Provider, error) {
	return NewStandalone(baseURL, baseURL, clientID, clientSecret)
}

// NewStandalone returns a provider served from a listener of its own at
// issuerBaseURL (the issuer is issuerBaseURL + "/oidc"), for a portal
// reachable at portalBaseURL, the only origin it redirects to: the load test
// runs it beside a separate `portal serve` process. Both URLs must be as New
// requires, and the client ID and secret not empty.
func NewStandalone(issuerBaseURL, portalBaseURL, clientID, clientSecret string) (*Provider, error) {
	issuerOrigin, err := parseBaseURL(issuerBaseURL)
	if err != nil {
		return nil, fmt.Errorf("devidp: base URL %q: %w", issuerBaseURL, err)
	}
	origin, err := parseBaseURL(portalBaseURL)
	if err != nil {
		return nil, fmt.Errorf("devidp: base URL %q: %w", portalBaseURL, err)
	}
	if clientID == "" || clientSecret == "" {
		return nil, errors.New("devidp: client ID and client secret must not be empty")
	}

	page, err := template.New("signin.html").
		Funcs(template.FuncMap{"join": strings.Join}).
		ParseFS(templates, "signin.html")
	if err != nil {
		return nil, fmt.Errorf("devidp: parse sign-in page: %w", err)
	}

	// Without a key of its own, mockoidc signs with a private key published
	// in its source code.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate signing key: %w", err)
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		return nil, fmt.Errorf("devidp: create provider: %w", err)
	}
	m.ClientID = clientID
	m.ClientSecret = clientSecret
	m.CodeChallengeMethodsSupported = []string{mockoidc.CodeChallengeMethodS256}
	// mockoidc derives its issuer and every URL in its discovery document
	// from Server.Addr, and offers no other way to set them. This server is
	// never started: the listener at the issuer's base URL (the portal's own,
	// for New) serves Handler, so the issuer follows its address.
	m.Server = &http.Server{Addr: issuerOrigin.Host}
	// The key ID is computed and stored on first use; doing it now keeps
	// concurrent JWKS and token requests from racing to store it.
	if _, err := m.Keypair.KeyID(); err != nil {
		return nil, fmt.Errorf("devidp: compute key ID: %w", err)
	}

	p := &Provider{oidc: m, origin: origin, page: page}
	p.handler = p.routes()
	return p, nil
}

// parseBaseURL returns the origin of baseURL, which must be http and loopback.
func parseBaseURL(baseURL string) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	// mockoidc writes http:// into its URLs unless it serves TLS itself.
	if u.Scheme != "http" {
		return nil, errors.New("scheme must be http")
	}
	// mockoidc's endpoints sit at fixed paths from the root.
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must be of the form http://host[:port]")
	}
	if !loopback.Host(u.Hostname()) {
		return nil, fmt.Errorf("host %q is not a loopback address; the development identity provider signs in anyone as anyone", u.Hostname())
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Issuer returns the issuer URL, the base URL followed by /oidc.
func (p *Provider) Issuer() string {
	return p.oidc.Issuer()
}

// Handler returns the handler for every path under /oidc/. It expects the
// full request path, so it is mounted at /oidc/ without stripping the prefix.
func (p *Provider) Handler() http.Handler {
	return p.handler
}

func (p *Provider) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+mockoidc.AuthorizationEndpoint, p.authorize)
	mux.HandleFunc("POST "+mockoidc.AuthorizationEndpoint, p.authorize)
	mux.HandleFunc("POST "+mockoidc.TokenEndpoint, p.token)
	mux.HandleFunc("GET "+mockoidc.UserinfoEndpoint, p.userinfo)
	mux.HandleFunc("POST "+mockoidc.UserinfoEndpoint, p.userinfo)
	mux.HandleFunc("GET "+mockoidc.JWKSEndpoint, p.oidc.JWKS)
	mux.HandleFunc("GET "+mockoidc.DiscoveryEndpoint, p.oidc.Discovery)
	return mux
}

// authorize signs in the identity named by login_hint, or shows the sign-in
// page to choose one.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		p.render(w, http.StatusBadRequest, signinPage{Error: "malformed authorization request: " + err.Error()})
		return
	}
	if err := p.checkAuthorizationRequest(r.Form); err != nil {
		p.render(w, http.StatusBadRequest, signinPage{Error: err.Error()})
		return
	}
	hint := strings.TrimSpace(r.Form.Get(loginHintParam))
	if hint == "" {
		p.render(w, http.StatusOK, p.chooser(r.Form, ""))
		return
	}
	email, err := parseEmail(hint)
	if err != nil {
		p.render(w, http.StatusBadRequest, p.chooser(r.Form, err.Error()))
		return
	}
	p.authorizeAs(w, r, lookupIdentity(email, strings.TrimSpace(r.Form.Get(nameParam))))
}

// checkAuthorizationRequest enforces what mockoidc does not: a known client,
// a redirect URI on the portal's origin, and PKCE with S256. mockoidc checks
// the rest. A bad client or redirect URI must be reported to the person, not
// redirected to (RFC 6749 §4.1.2.1).
func (p *Provider) checkAuthorizationRequest(form url.Values) error {
	if id := form.Get("client_id"); id != p.oidc.ClientID {
		return fmt.Errorf("unknown client_id %q", id)
	}
	redirect, err := url.Parse(form.Get("redirect_uri"))
	if err != nil || redirect.Scheme != p.origin.Scheme || !strings.EqualFold(redirect.Host, p.origin.Host) {
		return fmt.Errorf("redirect_uri %q is not on %s, the only origin this provider redirects to", form.Get("redirect_uri"), p.origin)
	}
	if form.Get("code_challenge") == "" || form.Get("code_challenge_method") != mockoidc.CodeChallengeMethodS256 {
		return errors.New("PKCE is required: send a code_challenge with code_challenge_method=S256")
	}
	return nil
}

// parseEmail returns the address in a login_hint, in lower case. The hint
// must be a bare address, because the subject is derived from it.
func parseEmail(hint string) (string, error) {
	addr, err := mail.ParseAddress(hint)
	if err != nil {
		return "", fmt.Errorf("login_hint %q is not an email address: %w", hint, err)
	}
	if addr.Address != hint {
		return "", fmt.Errorf("login_hint %q must be a bare email address, such as alice@example.org", hint)
	}
	return strings.ToLower(addr.Address), nil
}

// authorizeAs lets mockoidc answer the authorization request with id signed in.
func (p *Provider) authorizeAs(w http.ResponseWriter, r *http.Request, id Identity) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oidc.QueueUser(user{id})
	p.oidc.Authorize(w, r)
	// Authorize pops the queue only once the request passes its checks; a
	// rejected request must not leave its identity to the next one.
	p.oidc.UserQueue = &mockoidc.UserQueue{}
}

// token serves the token endpoint. It also accepts client credentials in
// HTTP Basic authentication, which mockoidc's discovery document advertises
// but its token endpoint reads only from the form.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed token request: "+err.Error())
		return
	}
	if rawID, rawSecret, ok := r.BasicAuth(); ok && r.Form.Get("client_id") == "" {
		// RFC 6749 §2.3.1: form-encoded, then Basic-encoded.
		id, idErr := url.QueryUnescape(rawID)
		secret, secretErr := url.QueryUnescape(rawSecret)
		if err := errors.Join(idErr, secretErr); err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "malformed client credentials: "+err.Error())
			return
		}
		r.Form.Set("client_id", id)
		r.Form.Set("client_secret", secret)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.oidc.Token(w, r)
}

func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oidc.Userinfo(w, r)
}

// oauthError writes an OAuth 2.0 error response (RFC 6749 §5.2).
func oauthError(w http.ResponseWriter, status int, code, description string) {
	body, err := json.Marshal(map[string]string{"error": code, "error_description": description})
	if err != nil {
		http.Error(w, code, status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// signinPage is what signin.html shows: an error, the identity chooser, or both.
type signinPage struct {
	Error   string
	Chooser bool
	Action  string
	// Identities link to the authorization request with their login_hint.
	Identities []choice
	// Params carry the authorization request through the form for another
	// identity.
	Params []param
}

type choice struct {
	Identity
	Href string
}

type param struct {
	Name, Value string
}

// chooser returns the sign-in page for the authorization request form.
func (p *Provider) chooser(form url.Values, errMsg string) signinPage {
	request := url.Values{}
	for name, values := range form {
		if name != loginHintParam && name != nameParam {
			request[name] = values
		}
	}

	page := signinPage{Error: errMsg, Chooser: true, Action: mockoidc.AuthorizationEndpoint}
	for _, id := range DemoIdentities() {
		q := url.Values{loginHintParam: {id.Email}}
		for name, values := range request {
			q[name] = values
		}
		page.Identities = append(page.Identities, choice{Identity: id, Href: mockoidc.AuthorizationEndpoint + "?" + q.Encode()})
	}
	for _, name := range slices.Sorted(maps.Keys(request)) {
		for _, value := range request[name] {
			page.Params = append(page.Params, param{Name: name, Value: value})
		}
	}
	return page
}

func (p *Provider) render(w http.ResponseWriter, status int, page signinPage) {
	var buf bytes.Buffer
	if err := p.page.Execute(&buf, page); err != nil {
		http.Error(w, "devidp: render sign-in page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
