package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TestBytesPostgreSQLRefusesAreA4xx sends a NUL and invalid UTF-8 where
// names and filters go: each is answered with a 4xx saying what to fix,
// never a 500, and no ERROR line is logged.
func TestBytesPostgreSQLRefusesAreA4xx(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	anonymous := p.browser()
	tests := []struct {
		name string
		do   func() response
	}{
		{"anonymous publication of cluster NUL", func() response { return anonymous.get("/api/v1/clusters/%00/web-config.yml") }},
		{"anonymous publication of invalid UTF-8", func() response { return anonymous.get("/api/v1/clusters/%ff%fe/web-config.yml") }},
		{"a request for cluster NUL", func() response {
			return alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi\x00ciroh"},
				"public_key": {newKey(t).Recipient().String()}, "justification": {"Dashboards for the research team."}})
		}},
		{"a request for cluster invalid UTF-8 over the API", func() response {
			return alice.apiPost("/api/v1/requests", `{"cluster":"\u0000x","public_key":"`+newKey(t).Recipient().String()+`","justification":"Dashboards for the team."}`)
		}},
		{"an audit filter on cluster NUL", func() response { return sam.get("/staff/audit?cluster=%00") }},
		{"an audit filter on actor NUL", func() response { return sam.get("/staff/audit?actor=a%00b") }},
		{"an audit text search with invalid UTF-8", func() response { return sam.get("/api/v1/audit?q=%ff") }},
	}
	for _, tt := range tests {
		r := tt.do()
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Errorf("%s: %d, want a 4xx\n%s", tt.name, r.StatusCode, r.Body)
		}
	}
	for line := range strings.Lines(p.logs.String()) {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("an ERROR was logged: %s", line)
		}
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored from hostile input", n)
	}
}

// TestProviderClaimsWithHostileBytes: an identity provider sends a NUL, a
// line break and a right-to-left override in the name, a group holding a
// NUL that reads as the staff group once the NUL is gone, and, for another
// person, a NUL in the email address. The first signs in as a customer
// with the name made printable and that group dropped; the second is
// refused with a page saying why. No 500, no ERROR logged.
func TestProviderClaimsWithHostileBytes(t *testing.T) {
	t.Parallel()
	idp := startMockIdP(t)
	p := newPortal(t, portalOptions{issuer: idp.m.Issuer(), clientID: idp.m.ClientID, clientSecret: idp.m.ClientSecret})

	b := p.browser()
	r := b.signInVia(idp, &mockoidc.MockUser{Subject: "carol", Email: "carol@example.org", EmailVerified: true,
		PreferredUsername: "Carol\x00 \u202Eelpmaxe\n" + strings.Repeat("x", 300), Groups: []string{"2i2c-st\x00aff", "hub-admins"}})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "role-customer") {
		t.Fatalf("sign-in with hostile bytes in the name and groups: %d\n%s", r.StatusCode, r.Body)
	}
	var name string
	var groups []string
	if err := p.Store.Pool().QueryRow(context.Background(), `SELECT name, groups FROM users WHERE subject = 'carol'`).Scan(&name, &groups); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "Carol elpmaxe") || len(name) > 200+len("…") || strings.ContainsAny(name, "\x00\n\u202E") {
		t.Errorf("name kept as %q, want it printable and cut at 200 bytes", name)
	}
	if !slices.Equal(groups, []string{"hub-admins"}) {
		t.Errorf("groups kept as %q, want the one with a NUL dropped", groups)
	}
	if q := b.get("/staff/requests"); q.StatusCode != http.StatusForbidden {
		t.Errorf("a group that reads as the staff group without its NUL reached the staff queue: %d", q.StatusCode)
	}

	r = p.browser().signInVia(idp, &mockoidc.MockUser{Subject: "dave", Email: "dave\x00@example.org", EmailVerified: true})
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, "characters that are not text") {
		t.Errorf("sign-in with a NUL in the email: %d\n%s", r.StatusCode, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM users WHERE subject = 'dave'`); n != 0 {
		t.Error("the person whose email holds a NUL was stored")
	}
	p.wantAudited(portal.ActionSignInFailed, 1)
	assertNoErrorLogged(t, p)
}
