package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardRowsFollowTheirCredential: the dashboard's rows are kept as
// rendered (renderRow), and each view still shows the credential as it is
// now: downloaded, then revoked.
func TestDashboardRowsFollowTheirCredential(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	sam.approve(reqID, "")
	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)
	current := func(body string) string {
		t.Helper()
		start, end := strings.Index(body, `id="current-heading"`), strings.Index(body, `id="requests-heading"`)
		if start < 0 || end < start {
			t.Fatalf("no current credentials section:\n%s", body)
		}
		return body[start:end]
	}
	for range 2 { // the second view prints the kept row
		if d := current(alice.get("/dashboard").Body); !strings.Contains(d, "not downloaded yet") {
			t.Fatalf("an approved credential nobody downloaded is not flagged:\n%s", d)
		}
	}
	if _, r := alice.download(reqID); r.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", r.StatusCode)
	}
	if d := current(alice.get("/dashboard").Body); strings.Contains(d, "not downloaded yet") {
		t.Errorf("the downloaded credential is still flagged as not downloaded:\n%s", d)
	}
	alice.submit(fmt.Sprintf("/credentials/%d/revoke", credID), fmt.Sprintf("/credentials/%d/revoke", credID),
		url.Values{"reason": {"The project ended."}})
	if p.count(`SELECT count(*) FROM credentials WHERE id = $1 AND revoked_at IS NOT NULL`, credID) != 1 {
		t.Fatal("the credential was not revoked")
	}
	d := alice.get("/dashboard").Body
	if strings.Contains(current(d), fmt.Sprintf(`/credentials/%d/credentials.txt.age`, credID)) {
		t.Errorf("the revoked credential is still offered for download:\n%s", current(d))
	}
	if !regexp.MustCompile(`(?s)id="past-heading".*status-revoked`).MatchString(d) {
		t.Errorf("the revoked credential is not among the past ones:\n%s", d)
	}
}

// TestRenewalFormCarriesEachSessionsOwnToken: the row of a credential due
// for renewal holds a form with the session's CSRF token. Kept rows are
// shared by every view of the same values, so two sessions of one person
// must each get a row with their own token, and the second's renewal must
// go through.
func TestRenewalFormCarriesEachSessionsOwnToken(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	if _, err := p.Store.Pool().Exec(context.Background(),
		`UPDATE credentials SET expires_at = now() + interval '5 days' WHERE id = $1`, cred.ID); err != nil {
		t.Fatal(err)
	}
	renewForm := regexp.MustCompile(fmt.Sprintf(`action="/credentials/%d/renew" class="inline">\s*<input type="hidden" name="csrf" value="([^"]+)"`, cred.ID))
	laptop := alice
	phone := p.signedIn("alice@example.org")
	var tokens []string
	for _, b := range []*browser{laptop, phone} {
		d := b.get("/dashboard").Body
		m := renewForm.FindStringSubmatch(d)
		if m == nil {
			t.Fatalf("no renewal form beside the expiring credential:\n%s", d)
		}
		if own := csrfToken(t, d); m[1] != own { // the header's sign-out form comes first
			t.Errorf("the renewal form carries %q, not the session's own token %q", m[1], own)
		}
		tokens = append(tokens, m[1])
	}
	if tokens[0] == tokens[1] {
		t.Fatalf("two sessions were given the same token %q", tokens[0])
	}
	r := phone.post(fmt.Sprintf("/credentials/%d/renew", cred.ID), url.Values{"csrf": {tokens[1]}})
	if r.StatusCode != http.StatusOK || p.count(`SELECT count(*) FROM requests WHERE renews_credential_id = $1`, cred.ID) != 1 {
		t.Errorf("renewing from the second session's dashboard: %d at %s", r.StatusCode, r.Request.URL)
	}
}

// TestRowCacheKeepsAtMostItsSize: rendered rows are bounded, whatever the
// number of different rows rendered.
func TestRowCacheKeepsAtMostItsSize(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	s := p.Server
	s.rowCache = newRowCache(8)
	for i := range 50 {
		row := requestRow{ID: fmt.Sprint(i), ClusterName: "awi-ciroh"}
		h, err := renderRow(s, "dashboard", "request-row", row)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(h), fmt.Sprintf(`href="/requests/%d"`, i)) {
			t.Fatalf("row %d rendered as %s", i, h)
		}
	}
	if n := s.rowCache.rows.Len(); n != 8 {
		t.Errorf("the row cache holds %d rows, want its size, 8", n)
	}
	if _, err := renderRow(s, "dashboard", "no-such-row", requestRow{}); err == nil {
		t.Error("a row template that does not exist rendered")
	}
}
