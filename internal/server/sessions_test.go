package server

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

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
			b := p.browser()
			b.signIn("alice@example.org")
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
