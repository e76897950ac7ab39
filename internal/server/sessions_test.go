package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// postWith sends a form with the request headers a browser would add, such
// as Sec-Fetch-Site and Origin.
func (b *browser) postWith(path string, form url.Values, headers map[string]string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.abs(path), strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

// getWith fetches path with the request headers a browser would add.
func (b *browser) getWith(path string, headers map[string]string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.abs(path), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

// setCookie gives b's jar a cookie for the portal, as a page of a sibling
// subdomain can (Domain=the parent domain) or as a test that stole one.
func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.p.URL)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// userID is the ID of the user with email.
func (p *testPortal) userID(email string) int64 {
	p.t.Helper()
	return int64(p.count(`SELECT id FROM users WHERE email = $1`, email))
}

// signedOut fails the test unless b is signed out: a signed-in page sends
// it to sign in.
func (b *browser) signedOut(why string) {
	b.t.Helper()
	r := b.noFollow().get("/dashboard")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
		b.t.Errorf("%s: /dashboard answers %d (Location %q), want a redirect to sign in", why, r.StatusCode, r.Header.Get("Location"))
	}
}

// stillSignedIn fails the test unless b is signed in.
func (b *browser) stillSignedIn(why string) {
	b.t.Helper()
	if r := b.noFollow().get("/dashboard"); r.StatusCode != http.StatusOK {
		b.t.Errorf("%s: /dashboard answers %d, want the signed-in page", why, r.StatusCode)
	}
}

// TestPlantedCSRFCookieCannotPostStaffForms performs the attack a sibling
// subdomain could make on echo's double-submit cookie: it plants portal_csrf
// for the portal's host and posts the staff approval form with the matching
// token, from the signed-in staff member's browser. Every variant is refused
// and changes nothing: the token is the session's, kept on the server, and a
// browser's same-site, cross-site or foreign-Origin post is refused before
// the token is looked at. The portal's own form, as a browser sends it, goes
// through.
func TestPlantedCSRFCookieCannotPostStaffForms(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	approve := fmt.Sprintf("/staff/requests/%d/approve", reqID)
	const planted = "planted-by-a-sibling-subdomain"
	sam.setCookie("portal_csrf", planted)
	forged := url.Values{"csrf": {planted}, "note": {"forged"}}
	before := p.snapshot()
	for _, tt := range []struct {
		name    string
		headers map[string]string
	}{
		{"a sibling subdomain's form", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://evil.2i2c.org"}},
		{"another site's form", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"a browser without Sec-Fetch-Site, from another origin", map[string]string{"Origin": "https://evil.2i2c.org"}},
		{"an opaque origin (a sandboxed frame, a redirect)", map[string]string{"Origin": "null"}},
		{"the planted token alone, no header to tell", nil},
	} {
		r := sam.postWith(approve, forged, tt.headers)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tt.name, r.StatusCode)
		}
	}
	// The JSON API keeps its own stance, and refuses a sibling's call too.
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/v1/requests/%d/approve", p.URL, reqID), strings.NewReader(`{"note":"forged"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-site")
	if r := sam.do(req); r.StatusCode != http.StatusForbidden {
		t.Errorf("a same-site call of the JSON API: %d, want 403", r.StatusCode)
	}
	if p.snapshot() != before {
		t.Fatal("a forged form changed requests or credentials")
	}
	p.wantAudited(portal.ActionRequestApproved, 0)

	// The staff member's own browser, with the page's token: approved.
	token := csrfToken(t, sam.get("/staff/requests").Body)
	r := sam.postWith(approve, url.Values{"csrf": {token}, "note": {"welcome"}},
		map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": p.URL})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "approved") {
		t.Errorf("the portal's own form: %d at %s", r.StatusCode, r.Request.URL)
	}
	p.wantAudited(portal.ActionRequestApproved, 1)
}

// TestCSRFTokenIsTheSessions: a form token is good only in the session it
// was given in. Bob's token, valid in his session, is refused in Alice's;
// and a token given before sign-in is no token after it.
func TestCSRFTokenIsTheSessions(t *testing.T) {
	t.Parallel()
	p, alice, bob, _ := newScene(t)
	bobs := csrfToken(t, bob.get("/dashboard").Body)
	if r := alice.post("/logout", url.Values{"csrf": {bobs}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: %d, want 403", r.StatusCode)
	}
	alice.stillSignedIn("after a refused sign-out")
	// Two sign-ins of one person get different tokens.
	again := p.signedIn("alice@example.org")
	if a, b := csrfToken(t, alice.get("/dashboard").Body), csrfToken(t, again.get("/dashboard").Body); a == b {
		t.Error("two sessions of the same person have the same CSRF token")
	}
}

// TestSessionTokenReadFromDatabaseOpensNoSession performs the theft: every
// key the database holds for a signed-in session, put in a browser's
// session cookie, opens nothing. The real cookie is nowhere in the
// database, and opens the session.
func TestSessionTokenReadFromDatabaseOpensNoSession(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	alice := p.signedIn("alice@example.org")
	cookie := alice.cookie("portal_session")
	rows, err := p.Store.Pool().Query(context.Background(), `SELECT token FROM sessions UNION SELECT token_hash FROM user_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := collectStrings(rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("the database holds no session: nothing to steal")
	}
	for _, key := range keys {
		thief := p.browser()
		thief.setCookie("portal_session", key)
		thief.signedOut("a session key read from the database")
	}
	p.assertSecretNowhere(t, cookie)
	owner := p.browser()
	owner.setCookie("portal_session", cookie)
	owner.stillSignedIn("the session cookie itself")
}

// sessionRow is a session as a sessions page lists it: its ID, and
// whether it is the asking browser's.
var sessionRow = regexp.MustCompile(`<tr id="session-(\d+)"( class="current")?>`)

// TestDemotedStaffLoseStaffPagesOnceSessionsAreEnded: Pat leaves the staff
// group at the identity provider, but their open sessions still carry the
// staff role. Sam finds Pat among the people, ends all of Pat's sessions
// (audited), and at the next request each of Pat's browsers is signed out;
// signing in again gives the customer role, and the staff pages are closed.
func TestDemotedStaffLoseStaffPagesOnceSessionsAreEnded(t *testing.T) {
	t.Parallel()
	idp := startMockIdP(t)
	p := idp.portal(t)
	pat := &mockoidc.MockUser{Subject: "pat", Email: "pat@example.org", EmailVerified: true, Groups: []string{"2i2c-staff"}}
	laptop, phone := p.browser(), p.browser()
	laptop.signInVia(idp, pat)
	phone.signInVia(idp, pat)
	sam := p.browser()
	sam.signInVia(idp, &mockoidc.MockUser{Subject: "sam", Email: "sam@2i2c.org", EmailVerified: true})

	// Pat leaves the staff group; the sessions open say otherwise.
	pat.Groups = nil
	if r := laptop.get("/staff/requests"); r.StatusCode != http.StatusOK {
		t.Fatalf("before anyone acts, Pat's session has the staff pages? %d", r.StatusCode)
	}

	people := sam.get("/staff/people?q=pat")
	m := regexp.MustCompile(`href="(/staff/people/(\d+)/sessions)"`).FindStringSubmatch(people.Body)
	if m == nil || !strings.Contains(people.Body, "pat@example.org") {
		t.Fatalf("Pat is not among the people:\n%s", people.Body)
	}
	page := sam.get(m[1])
	if got := len(sessionRow.FindAllString(page.Body, -1)); got != 2 || !strings.Contains(page.Body, "End all sessions") {
		t.Fatalf("Pat's sessions page lists %d sessions, want 2 and an End all button:\n%s", got, page.Body)
	}
	for _, leak := range []string{laptop.cookie("portal_session"), phone.cookie("portal_session")} {
		if strings.Contains(page.Body, leak) {
			t.Error("the sessions page shows a session token")
		}
	}
	r := sam.post(m[1]+"/end", url.Values{"csrf": {csrfToken(t, page.Body)}})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "2 sessions ended") {
		t.Errorf("ending Pat's sessions: %d at %s", r.StatusCode, r.Request.URL)
	}
	if got := len(sessionRow.FindAllString(r.Body, -1)); got != 0 {
		t.Errorf("after ending them, %d of Pat's sessions are listed", got)
	}
	for _, b := range []*browser{laptop, phone} {
		if r := b.noFollow().get("/staff/requests"); r.StatusCode != http.StatusSeeOther {
			t.Errorf("Pat's browser after the sessions were ended: /staff/requests %d, want a redirect to sign in", r.StatusCode)
		}
	}
	sam.stillSignedIn("staff who ended someone else's sessions")
	var details string
	var actor, subject int64
	err := p.Store.Pool().QueryRow(context.Background(), `SELECT actor_id, subject_id, details::text FROM audit_events
		WHERE action = $1`, string(portal.ActionSessionsEnded)).Scan(&actor, &subject, &details)
	if err != nil || actor != p.userID("sam@2i2c.org") || subject != p.userID("pat@example.org") ||
		!strings.Contains(details, `"sessions": 2`) || !strings.Contains(details, `"by": "staff"`) {
		t.Errorf("the audit event: actor %d, subject %d, details %s, %v", actor, subject, details, err)
	}

	// Pat signs in again: the identity provider says customer now.
	if r := laptop.signInVia(idp, pat); !strings.Contains(r.Body, "role-customer") {
		t.Errorf("Pat's new sign-in is not a customer's:\n%s", r.Body)
	}
	if r := laptop.get("/staff/requests"); r.StatusCode != http.StatusForbidden {
		t.Errorf("Pat, signed in again: /staff/requests %d, want 403", r.StatusCode)
	}
}

// TestSignOutEverywhere: Alice, signed in on two browsers, sees both on
// "Your sessions" (this browser marked) and signs out everywhere: both are
// signed out, Bob is not, and the audit log says so.
func TestSignOutEverywhere(t *testing.T) {
	t.Parallel()
	p, alice, bob, _ := newScene(t)
	other := p.signedIn("alice@example.org")
	page := alice.get("/sessions")
	rows := sessionRow.FindAllStringSubmatch(page.Body, -1)
	current := 0
	for _, r := range rows {
		if r[2] != "" {
			current++
		}
	}
	if len(rows) != 2 || current != 1 || !strings.Contains(page.Body, "this browser") {
		t.Fatalf("Your sessions lists %d sessions, %d marked as this browser's; want 2 and 1:\n%s", len(rows), current, page.Body)
	}
	r := alice.post("/sessions/end-all", url.Values{"csrf": {csrfToken(t, page.Body)}})
	if r.Request.URL.Path != "/" || !strings.Contains(r.Body, "Signed out everywhere: 2 sessions ended") {
		t.Errorf("sign out everywhere: %d at %s\n%s", r.StatusCode, r.Request.URL, r.Body)
	}
	alice.signedOut("the browser that signed out everywhere")
	other.signedOut("Alice's other browser")
	bob.stillSignedIn("Bob, after Alice signed out everywhere")
	p.wantAudited(portal.ActionSessionsEnded, 1)
	if n := p.count(`SELECT count(*) FROM user_sessions WHERE user_id = $1`, p.userID("alice@example.org")); n != 0 {
		t.Errorf("%d of Alice's session records remain", n)
	}
}

// TestSignOutAnotherBrowser: Alice ends the session of a browser she left
// signed in; that browser is signed out, hers is not.
func TestSignOutAnotherBrowser(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	left := p.signedIn("alice@example.org")
	page := alice.get("/sessions")
	var id string
	for _, r := range sessionRow.FindAllStringSubmatch(page.Body, -1) {
		if r[2] == "" {
			id = r[1]
		}
	}
	if id == "" {
		t.Fatalf("no other session listed:\n%s", page.Body)
	}
	r := alice.post("/sessions/"+id+"/end", url.Values{"csrf": {csrfToken(t, page.Body)}})
	if r.Request.URL.Path != "/sessions" || len(sessionRow.FindAllString(r.Body, -1)) != 1 {
		t.Errorf("after ending the other session: %d at %s, listing\n%s", r.StatusCode, r.Request.URL, r.Body)
	}
	left.signedOut("the browser whose session was ended")
	alice.stillSignedIn("the browser that ended the other")
	p.wantAudited(portal.ActionSessionEnded, 1)
}

// TestOthersSessionsAreNotYours: Bob can neither see nor end Alice's
// sessions, whatever IDs he tries; Alice stays signed in.
func TestOthersSessionsAreNotYours(t *testing.T) {
	t.Parallel()
	p, alice, bob, _ := newScene(t)
	aliceID := p.userID("alice@example.org")
	sessionID := p.count(`SELECT id FROM user_sessions WHERE user_id = $1`, aliceID)
	for _, path := range []string{"/staff/people", fmt.Sprintf("/staff/people/%d/sessions", aliceID)} {
		if r := bob.get(path); r.StatusCode != http.StatusForbidden {
			t.Errorf("Bob on %s: %d, want 403", path, r.StatusCode)
		}
	}
	token := csrfToken(t, bob.get("/sessions").Body)
	if r := bob.post(fmt.Sprintf("/sessions/%d/end", sessionID), url.Values{"csrf": {token}}); r.StatusCode != http.StatusNotFound {
		t.Errorf("Bob ending Alice's session: %d, want 404", r.StatusCode)
	}
	if r := bob.post(fmt.Sprintf("/staff/people/%d/sessions/end", aliceID), url.Values{"csrf": {token}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("Bob ending all of Alice's sessions: %d, want 403", r.StatusCode)
	}
	alice.stillSignedIn("Alice, after Bob's attempts")
	p.wantAudited(portal.ActionSessionEnded, 0)
	p.wantAudited(portal.ActionSessionsEnded, 0)
}

// TestCrossSiteDownloadIsRefused performs what a link on another site can
// do: a top-level navigation to the download, which carries the Lax session
// cookie. It is refused, from another site and from a sibling subdomain, on
// the page route and the API's, and neither counts nor audits a download;
// the refusal points at the credential's page. The portal's own button, an
// address typed in, and a script download as before.
func TestCrossSiteDownloadIsRefused(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	sam.approve(reqID, "")
	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)
	pagePath := fmt.Sprintf("/credentials/%d/credentials.txt.age", credID)
	apiPath := "/api/v1" + pagePath
	navigation := func(site string) map[string]string {
		return map[string]string{"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	}
	for _, path := range []string{pagePath, apiPath} {
		for _, site := range []string{"cross-site", "same-site"} {
			r := alice.getWith(path, navigation(site))
			if r.StatusCode != http.StatusForbidden || strings.HasPrefix(r.Body, "age-encryption.org/v1") {
				t.Errorf("%s from a %s link: %d, want 403 and no file", path, site, r.StatusCode)
			}
			if path == pagePath && !strings.Contains(r.Body, fmt.Sprintf(`href="/credentials/%d"`, credID)) {
				t.Errorf("the refusal does not point at the credential's page:\n%s", r.Body)
			}
		}
	}
	if n := p.count(`SELECT download_count FROM credentials WHERE id = $1`, credID); n != 0 {
		t.Errorf("refused downloads counted: %d", n)
	}
	p.wantAudited(portal.ActionCredentialDownloaded, 0)

	for what, headers := range map[string]map[string]string{
		"the credential page's button": navigation("same-origin"),
		"an address typed in":          navigation("none"),
		"a script":                     nil,
	} {
		if r := alice.getWith(pagePath, headers); r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Body, "age-encryption.org/v1") {
			t.Errorf("download from %s: %d", what, r.StatusCode)
		}
	}
	if r := alice.getWith(apiPath, nil); r.StatusCode != http.StatusOK {
		t.Errorf("the API download by a script: %d", r.StatusCode)
	}
	p.wantAudited(portal.ActionCredentialDownloaded, 4)
}
