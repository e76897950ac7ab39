package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// downloadLink matches a link to a credential's file.
var downloadLink = regexp.MustCompile(`href="/credentials/\d+/credentials\.txt\.age"`)

// confirmed does what a person does with a confirmation: opens it from the
// object's page (where it is a link, not a form that acts), reads it, and
// sends its form with fields.
func (b *browser) confirmed(from, confirmation string, fields url.Values) response {
	b.t.Helper()
	if obj := b.get(from); !strings.Contains(obj.Body, `href="`+confirmation+`"`) {
		b.t.Fatalf("%s has no link to %s:\n%s", from, confirmation, obj.Body)
	}
	return b.submit(confirmation, confirmation, fields)
}

// TestRevokedOrExpiredCredentialOffersNoDownload: once a credential is
// revoked, or has expired, neither its page, its request's page nor the
// dashboard offers a download that would only answer 409; the credential
// page says when, by whom and why it was revoked, and a credential reported
// compromised carries the badge.
func TestRevokedOrExpiredCredentialOffersNoDownload(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	credPage := func(id int64) string { return fmt.Sprintf("/credentials/%d", id) }

	revoked := p.issue(alice, sam, "awi-ciroh")
	alice.confirmed(credPage(revoked.ID), credPage(revoked.ID)+"/revoke", url.Values{"reason": {"project ended"}})
	page := alice.get(credPage(revoked.ID))
	if downloadLink.MatchString(page.Body) {
		t.Errorf("a revoked credential's page offers a download:\n%s", page.Body)
	}
	if !regexp.MustCompile(`Revoked on \d{4}-\d\d-\d\d \d\d:\d\d UTC by you: project ended`).MatchString(page.Body) ||
		strings.Contains(page.Body, "keeps working until") {
		t.Errorf("the revoked credential's page does not say when, by whom and why:\n%s", page.Body)
	}
	reqPage := alice.get(fmt.Sprintf("/requests/%d", p.count(`SELECT request_id FROM credentials WHERE id = $1`, revoked.ID)))
	if downloadLink.MatchString(reqPage.Body) || !strings.Contains(reqPage.Body, "Revoked on") {
		t.Errorf("the revoked credential's request page offers a download or hides the revocation:\n%s", reqPage.Body)
	}

	compromised := p.issue(alice, sam, "awi-ciroh")
	alice.confirmed(credPage(compromised.ID), credPage(compromised.ID)+"/report-compromised", url.Values{"details": {"laptop lost"}})
	page = alice.get(credPage(compromised.ID))
	if downloadLink.MatchString(page.Body) || !strings.Contains(page.Body, `<span class="status status-compromised">compromised</span>`) {
		t.Errorf("a compromised credential: a download, or no badge:\n%s", page.Body)
	}
	if staffView := sam.get(credPage(compromised.ID)); !strings.Contains(staffView.Body, "by its owner") ||
		!strings.Contains(staffView.Body, "status-compromised") {
		t.Errorf("staff's view of the compromised credential:\n%s", staffView.Body)
	}

	expired := p.issue(alice, sam, "awi-ciroh")
	p.exec(`UPDATE credentials SET issued_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE id = $1`, expired.ID)
	page = alice.get(credPage(expired.ID))
	if downloadLink.MatchString(page.Body) || !strings.Contains(page.Body, "Expired on") {
		t.Errorf("an expired credential's page offers a download or does not say it expired:\n%s", page.Body)
	}

	// The dashboard: nothing past under the current credentials, and no
	// download among the past ones.
	dash := alice.get("/dashboard").Body
	current, past, ok := strings.Cut(dash, "Past credentials")
	if !ok {
		t.Fatalf("the dashboard does not set past credentials apart:\n%s", dash)
	}
	for _, c := range []issued{revoked, compromised, expired} {
		if strings.Contains(current, c.Username) || !strings.Contains(past, c.Username) {
			t.Errorf("%s is not among the past credentials only", c.Username)
		}
	}
	if downloadLink.MatchString(past) || downloadLink.MatchString(current) {
		t.Errorf("the dashboard offers a download of a past credential:\n%s", dash)
	}
}

// TestReloadingTheSyncTokenPageRotatesNothing: rotating is a POST that
// redirects to the page showing the new token once; reloading that page
// rotates nothing (one cluster.sync_token_rotated event), shows the token no
// more, and the token copied still works. The token never reaches the
// database, sessions included.
func TestReloadingTheSyncTokenPageRotatesNothing(t *testing.T) {
	t.Parallel()
	p, _, _, sam := newScene(t)
	cluster := p.count(`SELECT id FROM clusters WHERE name = 'awi-ciroh'`)
	edit := fmt.Sprintf("/staff/clusters/%d/edit", cluster)
	confirm := fmt.Sprintf("/staff/clusters/%d/sync-token", cluster)

	r := sam.confirmed(edit, confirm, nil)
	token := regexp.MustCompile(`portal-sync-[A-Za-z0-9_-]+`).FindString(r.Body)
	if token == "" || r.Request.URL.Path != confirm+"/new" {
		t.Fatalf("after rotating: at %s, no token shown:\n%s", r.Request.URL, r.Body)
	}
	for i := range 3 {
		again := sam.get(confirm + "/new")
		if again.StatusCode != http.StatusOK || strings.Contains(again.Body, "portal-sync-") || !strings.Contains(again.Body, "shown once already") {
			t.Errorf("reload %d of the token page: %d\n%s", i+1, again.StatusCode, again.Body)
		}
	}
	p.wantAudited(portal.ActionClusterSyncTokenRotated, 1)
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/clusters/awi-ciroh/web-config.yml", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the token shown, after reloads: %d, want it to work", resp.StatusCode)
	}
	if n := p.count(`SELECT count(*) FROM sessions WHERE position(convert_to($1, 'UTF8') in data) > 0`, token); n != 0 {
		t.Errorf("the sync token is in %d sessions", n)
	}

	// Rotating an existing token is confirmed first, naming the cluster and
	// warning that its agent must be given the new one.
	c := sam.get(confirm)
	if !strings.Contains(c.Body, "Rotate the sync token of awi-ciroh?") || !strings.Contains(c.Body, "until it is given the new one") {
		t.Errorf("the rotation's confirmation:\n%s", c.Body)
	}
	p.wantAudited(portal.ActionClusterSyncTokenRotated, 1)
}

// TestConfirmationsSayWhatHappensAndChangeNothing: revoke, report
// compromised, deny, cancel, approve and rotate are each a link to a page
// that names what will happen, in plain HTML (no script needed), and
// opening it changes nothing.
func TestConfirmationsSayWhatHappensAndChangeNothing(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	pending := bob.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	cluster := p.count(`SELECT id FROM clusters WHERE name = 'awi-ciroh'`)
	credPage, reqPage := fmt.Sprintf("/credentials/%d", cred.ID), fmt.Sprintf("/requests/%d", pending)
	before := p.snapshot()
	for _, tt := range []struct {
		name     string
		who      *browser
		from, to string
		want     []string
	}{
		{"revoke", alice, credPage, credPage + "/revoke", []string{"Revoke credential " + cred.Username + "?", "refuses " + cred.Username + " within seconds", "cannot be undone", `name="reason"`}},
		{"report compromised", alice, credPage, credPage + "/report-compromised", []string{"Report " + cred.Username + " compromised?", "2i2c staff are told", "Do not paste the password"}},
		{"cancel", bob, reqPage, reqPage + "/cancel", []string{fmt.Sprintf("Cancel request #%d for awi-ciroh?", pending), "cannot be undone"}},
		{"deny", sam, "/staff/requests", fmt.Sprintf("/staff/requests/%d/deny", pending), []string{fmt.Sprintf("Deny request #%d from bob@example.org?", pending), "with your reason", `name="note"`}},
		{"approve", sam, "/staff/requests", fmt.Sprintf("/staff/requests/%d/approve", pending), []string{fmt.Sprintf("Approve request #%d from bob@example.org?", pending), "issued at once", `name="expires_on"`}},
		{"rotate", sam, fmt.Sprintf("/staff/clusters/%d/edit", cluster), fmt.Sprintf("/staff/clusters/%d/sync-token", cluster), []string{"Create a sync token for awi-ciroh?", "shown once"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obj := tt.who.get(tt.from)
			if !strings.Contains(obj.Body, `href="`+tt.to+`"`) || strings.Contains(obj.Body, `<form method="post" action="`+tt.to+`"`) {
				t.Errorf("%s: want a link to the confirmation, not a form that acts", tt.from)
			}
			page := tt.who.get(tt.to)
			if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, `<form method="post" action="`+tt.to+`"`) {
				t.Fatalf("%s: %d, no form posting to itself\n%s", tt.to, page.StatusCode, page.Body)
			}
			for _, w := range tt.want {
				if !strings.Contains(page.Body, strings.ReplaceAll(w, "'", "&#39;")) {
					t.Errorf("%s does not say %q", tt.to, w)
				}
			}
		})
	}
	if p.snapshot() != before {
		t.Error("opening a confirmation changed something")
	}
	// Confirmed, each does what it said.
	sam.submit(fmt.Sprintf("/staff/requests/%d/deny", pending), fmt.Sprintf("/staff/requests/%d/deny", pending), url.Values{"note": {"Use the shared Grafana."}})
	if got := p.count(`SELECT count(*) FROM requests WHERE id = $1 AND status = 'denied'`, pending); got != 1 {
		t.Error("the confirmed denial did not deny")
	}
	// A decided request's confirmation says so in plain words.
	if r := sam.get(fmt.Sprintf("/staff/requests/%d/approve", pending)); r.StatusCode != http.StatusConflict ||
		!strings.Contains(r.Body, fmt.Sprintf("Request #%d is denied already", pending)) {
		t.Errorf("approving a denied request: %d\n%s", r.StatusCode, r.Body)
	}
}

// TestErrorPagesSpeakPlainly: an error page is headed by what happened,
// never by an HTTP phrase, offers the way to the person's credentials, and
// labels the request ID as the support reference.
func TestErrorPagesSpeakPlainly(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	alice.submit(fmt.Sprintf("/credentials/%d/revoke", cred.ID), fmt.Sprintf("/credentials/%d/revoke", cred.ID), url.Values{"reason": {"done"}})
	heading := regexp.MustCompile(`<h1[^>]*>([^<]*)</h1>`)
	for _, tt := range []struct {
		path, want string
		status     int
	}{
		{fmt.Sprintf("/credentials/%d/credentials.txt.age", cred.ID), "This credential was revoked and no longer works", http.StatusConflict},
		{"/requests/999999", "There is nothing here", http.StatusNotFound},
		{"/staff/requests", "This is not open to you", http.StatusForbidden},
	} {
		r := alice.get(tt.path)
		m := heading.FindStringSubmatch(r.Body)
		if r.StatusCode != tt.status || m == nil || m[1] != tt.want {
			t.Errorf("%s: %d, heading %q; want %d %q", tt.path, r.StatusCode, m, tt.status, tt.want)
		}
		if strings.Contains(r.Body, ">"+http.StatusText(tt.status)+"<") || !strings.Contains(r.Body, "<title>Error: ") {
			t.Errorf("%s: an HTTP phrase as heading, or a title not starting with Error:", tt.path)
		}
		if !strings.Contains(r.Body, `<a href="/dashboard">Go to your credentials</a>`) || !strings.Contains(r.Body, "Support reference: <code>") {
			t.Errorf("%s: no link to the credentials or no support reference", tt.path)
		}
	}
}

// TestQueueWarnsOfRenewingACompromisedCredential: a renewal of a credential
// reported compromised carries the warning with its date and whether the
// key is the same; a renewal with another key says which credential it
// renews.
func TestQueueWarnsOfRenewingACompromisedCredential(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	alice.submit(fmt.Sprintf("/credentials/%d", cred.ID), fmt.Sprintf("/credentials/%d/report-compromised", cred.ID), url.Values{"details": {"laptop lost"}})
	alice.submit(fmt.Sprintf("/credentials/%d", cred.ID), fmt.Sprintf("/credentials/%d/renew", cred.ID), nil)

	other := p.issue(bob, sam, "awi-ciroh")
	form := bob.get(fmt.Sprintf("/requests/new?renew=%d", other.ID))
	if !strings.Contains(form.Body, fmt.Sprintf(`name="renews" value="%d"`, other.ID)) {
		t.Fatalf("the renew-with-another-key form does not say what it renews:\n%s", form.Body)
	}
	r := bob.submit(fmt.Sprintf("/requests/new?renew=%d", other.ID), "/requests", url.Values{"cluster": {"awi-ciroh"},
		"public_key": {newKey(t).Recipient().String()}, "justification": {"Dashboards for the research team."}, "renews": {fmt.Sprint(other.ID)}})
	if r.StatusCode != http.StatusOK || p.count(`SELECT count(*) FROM requests WHERE renews_credential_id = $1`, other.ID) != 1 {
		t.Fatalf("renewal with another key: %d at %s", r.StatusCode, r.Request.URL)
	}

	q := sam.get("/staff/requests").Body
	alices, bobs, _ := strings.Cut(q, "bob@example.org")
	if !regexp.MustCompile(`(?s)class="risk".*Renews a credential reported compromised.*revoked on \d{4}-\d\d-\d\d`).MatchString(alices) ||
		!strings.Contains(alices, "Same key as the revoked credential") {
		t.Errorf("the queue does not warn of the compromised credential's renewal:\n%s", alices)
	}
	if !strings.Contains(bobs, fmt.Sprintf(`credential %d</a>`, other.ID)) || strings.Contains(bobs, `class="risk"`) {
		t.Errorf("the renewal with another key does not say what it renews, or warns of an active one:\n%s", bobs)
	}
	// Someone else's credential cannot be named as renewed.
	mallory := bob.submit("/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"},
		"public_key": {newKey(t).Recipient().String()}, "justification": {"Dashboards for the research team."}, "renews": {fmt.Sprint(cred.ID)}})
	if mallory.StatusCode != http.StatusNotFound {
		t.Errorf("renewing alice's credential as bob: %d", mallory.StatusCode)
	}
}

// TestStaffLandOnTheQueue: without a page to return to, staff land on the
// queue after sign-in and customers on their credentials.
func TestStaffLandOnTheQueue(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	if r := p.browser().signIn("sam@2i2c.org"); r.Request.URL.Path != "/staff/requests" {
		t.Errorf("staff landed on %s", r.Request.URL.Path)
	}
	if r := p.browser().signIn("alice@example.org"); r.Request.URL.Path != "/dashboard" {
		t.Errorf("a customer landed on %s", r.Request.URL.Path)
	}
}

// TestDashboardShowsTheNextStep: an active credential has its Download
// button, marked "not downloaded yet" until it is; fingerprints are
// shortened with the whole a tap away; times are relative and absolute.
func TestDashboardShowsTheNextStep(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	key := newKey(t)
	reqID := alice.requestAccess("awi-ciroh", key.Recipient().String(), "Dashboards for the research team.")
	sam.approve(reqID, "")
	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)
	dash := alice.get("/dashboard").Body
	if !strings.Contains(dash, fmt.Sprintf(`href="/credentials/%d/credentials.txt.age">Download`, credID)) || !strings.Contains(dash, "not downloaded yet") {
		t.Errorf("the dashboard does not offer the download as the next step:\n%s", dash)
	}
	if !regexp.MustCompile(`<time datetime="\d{4}-\d\d-\d\dT[^"]+Z"[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d UTC</time> <span class="ago">\((in |[^)]* ago)`).MatchString(dash) {
		t.Errorf("the dashboard's times are not both relative and absolute:\n%s", dash)
	}
	if !strings.Contains(dash, `<details class="long"><summary>`) {
		t.Errorf("the fingerprint is not shortened:\n%s", dash)
	}
	alice.download(reqID)
	if dash := alice.get("/dashboard").Body; strings.Contains(dash, "not downloaded yet") {
		t.Error(`still "not downloaded yet" after the download`)
	}
}

// TestDecryptHintMatchesTheKey: the decrypt command names the private key
// file of the key type, and a post-quantum key says it needs age 1.3.
func TestDecryptHintMatchesTheKey(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	reqID := alice.requestAccess("awi-ciroh", pq.Recipient().String(), "Dashboards for the research team.")
	sam.approve(reqID, "")
	page := alice.get(fmt.Sprintf("/credentials/%d", p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID))).Body
	if !strings.Contains(page, "age --decrypt -i key.txt") || !strings.Contains(page, "needs age 1.3 or later") {
		t.Errorf("a post-quantum key's credential page:\n%s", page)
	}
	ssh := sshEd25519Key(t)
	reqID = bob.requestAccess("awi-ciroh", ssh, "Dashboards for the research team.")
	sam.approve(reqID, "")
	page = bob.get(fmt.Sprintf("/credentials/%d", p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID))).Body
	if !strings.Contains(page, "age --decrypt -i ~/.ssh/id_ed25519 -o credentials.txt credentials.txt.age") || strings.Contains(page, "1.3 or later") {
		t.Errorf("an SSH key's credential page:\n%s", page)
	}
}

// sshEd25519Key is a new SSH Ed25519 public key, as in authorized_keys.
func sshEd25519Key(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " bob@laptop"
}

// TestFormsReportEveryProblemAtOnce: the request form and the cluster form
// name every problem in one answer, each beside its field with
// aria-invalid and aria-describedby pointing at its message, under an
// error summary that takes focus; the title starts with "Error:".
func TestFormsReportEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cluster := p.count(`SELECT id FROM clusters WHERE name = 'awi-ciroh'`)
	for _, tt := range []struct {
		name         string
		who          *browser
		page, action string
		form         url.Values
		fields       []string
	}{
		{"request", alice, "/requests/new", "/requests",
			url.Values{"cluster": {"no-such-cluster"}, "public_key": {"not a key"}, "justification": {"short"}},
			[]string{"public_key", "justification", "cluster"}},
		{"cluster", sam, fmt.Sprintf("/staff/clusters/%d/edit", cluster), fmt.Sprintf("/staff/clusters/%d", cluster),
			url.Values{"name": {"awi-ciroh"}, "prometheus_url": {"http://insecure"}, "credential_ttl_days": {"0"}, "note": {"ok"}},
			[]string{"prometheus_url", "credential_ttl_days"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.who.submit(tt.page, tt.action, tt.form)
			if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "<title>Error: ") {
				t.Fatalf("%d, title not starting with Error:\n%s", r.StatusCode, r.Body)
			}
			if !strings.Contains(r.Body, `data-error-summary autofocus`) || !strings.Contains(r.Body, fmt.Sprintf("There are %d problems to fix", len(tt.fields))) {
				t.Errorf("no summary of all %d problems", len(tt.fields))
			}
			for _, f := range tt.fields {
				field := regexp.MustCompile(`id="` + f + `"[^>]*aria-invalid="true" aria-describedby="` + f + `-error[ "]`)
				if !field.MatchString(r.Body) || !strings.Contains(r.Body, `<p class="field-error" id="`+f+`-error">`) ||
					!strings.Contains(r.Body, `<a href="#`+f+`">`) {
					t.Errorf("field %s is not marked invalid with its message beside it and in the summary", f)
				}
			}
		})
	}
}

// TestTheDetailsThatWereFound: a cancelled request does not read "Decided
// by"; a denial's note is its reason, with the next step; the audit log
// keeps one line per event, details a tap away; its filter errors speak of
// the form's labels; every page has a skip link and no table header is
// empty.
func TestTheDetailsThatWereFound(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	cancelled := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	alice.submit(fmt.Sprintf("/requests/%d/cancel", cancelled), fmt.Sprintf("/requests/%d/cancel", cancelled), nil)
	page := alice.get(fmt.Sprintf("/requests/%d", cancelled)).Body
	if !strings.Contains(page, "<dt>Cancelled</dt>") || strings.Contains(page, "Decided") || strings.Contains(page, " by alice@example.org") {
		t.Errorf("a cancelled request reads as decided:\n%s", page)
	}

	denied := bob.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	sam.submit("/staff/requests", fmt.Sprintf("/staff/requests/%d/deny", denied), url.Values{"note": {"Use the shared Grafana."}})
	page = bob.get(fmt.Sprintf("/requests/%d", denied)).Body
	if !strings.Contains(page, "<dt>Reason for the denial</dt>") || !strings.Contains(page, "make a new request</a> that does") {
		t.Errorf("a denial's note is not labelled as its reason with the next step:\n%s", page)
	}

	audit := sam.get("/staff/audit").Body
	if !strings.Contains(audit, `<details class="clip"><summary>`) {
		t.Errorf("the audit log's long details are not folded into one line:\n%s", audit)
	}
	bad := sam.get("/staff/audit?subject_id=x&subject_type=request")
	if bad.StatusCode != http.StatusBadRequest && bad.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(bad.Body, "“Subject number” is a positive whole number") || strings.Contains(bad.Body, "subject_id is") {
		t.Errorf("an audit filter error names the parameter, not the label: %d\n%s", bad.StatusCode, bad.Body)
	}

	cred := p.issue(alice, sam, "awi-ciroh")
	emptyTH := regexp.MustCompile(`<th[^>]*>\s*</th>`)
	for _, pg := range []struct {
		who  *browser
		path string
	}{
		{alice, "/dashboard"}, {alice, fmt.Sprintf("/credentials/%d", cred.ID)}, {alice, "/sessions"},
		{sam, "/staff/requests"}, {sam, "/staff/clusters"}, {sam, "/staff/revocations"}, {sam, "/staff/audit"},
		{sam, "/staff/people"}, {sam, "/staff/notifications"},
	} {
		body := pg.who.get(pg.path).Body
		if !strings.Contains(body, `<a class="skip-link" href="#main">`) || emptyTH.MatchString(body) {
			t.Errorf("%s: no skip link, or an empty table header", pg.path)
		}
	}
}
