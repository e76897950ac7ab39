// Package oidc signs people in through an OpenID Connect provider: it
// discovers the provider (retrying while it is unreachable), builds the
// authorization URL with PKCE, state and nonce, and exchanges the code for a
// verified identity.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// ErrUnavailable means the provider has not been discovered yet, or did not
// answer: sign-in cannot go on until it does. It is of
// portal.KindUnavailable.
var ErrUnavailable = &portal.Error{Kind: portal.KindUnavailable, Message: "oidc: identity provider unavailable"}

// ErrRejected means the provider's answer did not prove who the person is:
// an exchange that failed or an ID token that did not verify. It is of
// portal.KindUnauthorized.
var ErrRejected = &portal.Error{Kind: portal.KindUnauthorized, Message: "oidc: sign-in rejected"}

// Config describes the relying party.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string
	Scopes       []string // "openid" is always asked for
	GroupsClaim  string   // the ID token claim that lists groups; empty for none
	// HTTPClient talks to the provider; nil means a client with a timeout.
	HTTPClient *http.Client
}

// Client is an OIDC relying party. It is safe for concurrent use.
type Client struct {
	cfg   Config
	log   *slog.Logger
	state atomic.Pointer[discovered]
}

type discovered struct {
	oauth    oauth2.Config
	verifier *gooidc.IDTokenVerifier
}

// New returns a Client that is not yet usable: call Discover or Run.
func New(cfg Config, log *slog.Logger) *Client {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{cfg: cfg, log: log}
}

// Ready reports whether the provider has been discovered.
func (c *Client) Ready() bool { return c.state.Load() != nil }

// Discover fetches the provider's metadata once. It returns an error if the
// provider cannot be reached or its metadata does not match the issuer.
func (c *Client) Discover(ctx context.Context) error {
	ctx = gooidc.ClientContext(ctx, c.cfg.HTTPClient)
	p, err := gooidc.NewProvider(ctx, c.cfg.Issuer)
	if err != nil {
		return fmt.Errorf("oidc: discover %s: %w", c.cfg.Issuer, err)
	}
	scopes := []string{gooidc.ScopeOpenID}
	for _, s := range c.cfg.Scopes {
		if s != gooidc.ScopeOpenID {
			scopes = append(scopes, s)
		}
	}
	c.state.Store(&discovered{
		oauth: oauth2.Config{
			ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret,
			RedirectURL: c.cfg.RedirectURL, Endpoint: p.Endpoint(), Scopes: scopes,
		},
		verifier: p.Verifier(&gooidc.Config{ClientID: c.cfg.ClientID}),
	})
	return nil
}

// Run discovers the provider, retrying with backoff (from about 250 ms,
// doubling, up to a minute apart) until it succeeds or ctx ends. The portal
// serves meanwhile; sign-in says it is unavailable for now.
func (c *Client) Run(ctx context.Context) {
	// Jittered so that replicas started together do not ask in step. The
	// library jitters after capping, so its cap sits that much below a
	// minute.
	const jitter = 0.2
	retry := &backoff.ExponentialBackOff{
		InitialInterval:     250 * time.Millisecond,
		RandomizationFactor: jitter,
		Multiplier:          2,
		MaxInterval:         time.Duration(float64(time.Minute) / (1 + jitter)),
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, c.Discover(ctx) },
		backoff.WithBackOff(retry), backoff.WithMaxElapsedTime(0), // until ctx ends
		backoff.WithNotify(func(err error, next time.Duration) {
			c.log.Warn("identity provider unreachable; sign-in unavailable until it answers",
				"issuer", c.cfg.Issuer, "error", err.Error(), "retry_in", next.Round(time.Millisecond).String())
		}))
	if err == nil {
		c.log.Info("identity provider discovered", "issuer", c.cfg.Issuer)
	}
}

// Attempt is what must be remembered between sending a person to the
// provider and their return: it belongs in their session, never in the URL.
type Attempt struct {
	State    string
	Nonce    string
	Verifier string // PKCE code verifier
}

// NewAttempt returns fresh random values for one sign-in.
func NewAttempt() Attempt {
	return Attempt{State: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier()}
}

// AuthCodeURL is where to send the person for attempt a. loginHint, when not
// empty, is passed on so the provider can preselect an account. Returns
// ErrUnavailable before discovery.
func (c *Client) AuthCodeURL(a Attempt, loginHint string) (string, error) {
	d := c.state.Load()
	if d == nil {
		return "", ErrUnavailable
	}
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(a.Nonce), oauth2.S256ChallengeOption(a.Verifier)}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	return d.oauth.AuthCodeURL(a.State, opts...), nil
}

// Exchange trades code for tokens and returns the identity the ID token
// proves, after go-oidc has checked its signature, issuer, audience and
// expiry and Exchange has checked its nonce against a. Returns
// ErrUnavailable before discovery and an error wrapping ErrRejected when the
// answer proves nothing.
func (c *Client) Exchange(ctx context.Context, a Attempt, code string) (portal.Identity, error) {
	d := c.state.Load()
	if d == nil {
		return portal.Identity{}, ErrUnavailable
	}
	ctx = gooidc.ClientContext(ctx, c.cfg.HTTPClient)
	tok, err := d.oauth.Exchange(ctx, code, oauth2.VerifierOption(a.Verifier))
	var re *oauth2.RetrieveError
	if err != nil && !errors.As(err, &re) {
		// No answer at all: the provider is down, not refusing.
		return portal.Identity{}, fmt.Errorf("%w: code exchange: provider unreachable", ErrUnavailable)
	}
	if err != nil {
		return portal.Identity{}, fmt.Errorf("%w: code exchange: %s", ErrRejected, describeExchangeError(err))
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return portal.Identity{}, fmt.Errorf("%w: the token response has no ID token", ErrRejected)
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return portal.Identity{}, fmt.Errorf("%w: ID token: %s", ErrRejected, err.Error())
	}
	if idt.Nonce != a.Nonce {
		return portal.Identity{}, fmt.Errorf("%w: ID token nonce does not match this sign-in", ErrRejected)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return portal.Identity{}, fmt.Errorf("%w: ID token claims: %s", ErrRejected, err.Error())
	}
	id := portal.Identity{
		// The configured issuer, not the token's: go-oidc accepts Google's
		// "accounts.google.com" without a scheme, which would make one
		// person two users.
		Issuer:        c.cfg.Issuer,
		Subject:       idt.Subject,
		Email:         stringClaim(claims, "email"),
		EmailVerified: boolClaim(claims, "email_verified"),
		Name:          stringClaim(claims, "name"),
	}
	if c.cfg.GroupsClaim != "" {
		id.Groups = stringsClaim(claims, c.cfg.GroupsClaim)
	}
	if id.Name == "" {
		id.Name = stringClaim(claims, "preferred_username")
	}
	return id, nil
}

// describeExchangeError keeps the provider's error code and drops the
// response body, which could echo what was sent.
func describeExchangeError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Sprintf("provider answered %s (%s)", re.ErrorCode, re.ErrorDescription)
		}
		if re.Response != nil {
			return "provider answered HTTP " + re.Response.Status
		}
	}
	return "provider unreachable"
}

func stringClaim(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return strings.TrimSpace(s)
}

// boolClaim reads a boolean claim; some providers send "true" as a string.
func boolClaim(claims map[string]any, name string) bool {
	switch v := claims[name].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// stringsClaim reads a list claim; a single string counts as a list of one.
func stringsClaim(claims map[string]any, name string) []string {
	switch v := claims[name].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
