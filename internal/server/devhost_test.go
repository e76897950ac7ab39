package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/outbox"
)

// A person who opens `portal dev` by another name of the machine than its
// base URL's (127.0.0.1 for localhost, or the other way round) still signs
// in: the portal sends them to the base URL before the sign-in starts,
// rather than letting it end on "This sign-in did not start here".
func TestDevSignInFromAnotherNameOfTheHost(t *testing.T) {
	p := newPortal(t, portalOptions{devMail: outbox.NewCapture(10)})
	base, _ := url.Parse(p.URL)
	other := "http://localhost:" + base.Port()

	b := p.browser()
	r := b.get(other + "/login?login_hint=alice%40example.org&next=%2Frequests%2Fnew")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "Sign out") {
		t.Fatalf("sign-in begun at %s ended at %s with %d:\n%s", other, r.Request.URL, r.StatusCode, r.Body)
	}
	if got := r.Request.URL.String(); got != p.URL+"/requests/new" {
		t.Errorf("signed in at %s, want %s/requests/new", got, p.URL)
	}

	// The redirect keeps the path and query; probes answer on any name.
	nf := b.noFollow()
	if r := nf.get(other + "/requests/new?cluster=x"); r.StatusCode != http.StatusTemporaryRedirect ||
		r.Header.Get("Location") != p.URL+"/requests/new?cluster=x" {
		t.Errorf("GET on another name: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := nf.get(other + "/healthz"); r.StatusCode != http.StatusOK {
		t.Errorf("/healthz on another name: %d", r.StatusCode)
	}
}

// A production portal does not redirect: behind a proxy that rewrites Host
// it would redirect for ever.
func TestServeDoesNotRedirectOtherHosts(t *testing.T) {
	p := newPortal(t, portalOptions{})
	base, _ := url.Parse(p.URL)
	r := p.browser().noFollow().get("http://localhost:" + base.Port() + "/")
	if r.StatusCode != http.StatusOK {
		t.Errorf("home page on another name: %d, want 200", r.StatusCode)
	}
}
