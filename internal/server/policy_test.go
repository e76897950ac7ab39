package server

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// apiSend sends a JSON body with method, as a script would, with the
// browser's session.
func (b *browser) apiSend(method, path, body string) response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.abs(path), strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return b.do(req)
}

// savePolicy fills in the policy part of cluster name's staff page.
func (b *browser) savePolicy(p *testPortal, name string, fields url.Values) response {
	b.t.Helper()
	id := int64(p.count(`SELECT id FROM clusters WHERE name = $1`, name))
	c, err := p.Store.ClusterByID(b.t.Context(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	form := url.Values{"name": {c.Name}, "display_name": {c.DisplayName}, "prometheus_url": {c.PrometheusURL},
		"credential_ttl_days": {fmt.Sprint(c.CredentialTTLDays)}, "note": {c.Note}, "enabled": {"on"}}
	for k, v := range fields {
		form[k] = v
	}
	return b.submit(fmt.Sprintf("/staff/clusters/%d/edit", id), fmt.Sprintf("/staff/clusters/%d", id), form)
}

func TestPolicySetOnTheClusterPageIsShownToCustomers(t *testing.T) {
	p, alice, _, sam := newScene(t)
	r := sam.savePolicy(p, "awi-ciroh", url.Values{
		"auto_approve_email_domains": {"EarthScope.org\r\n@unavco.org"},
		"auto_approve_groups":        {"earthscope-admins"},
		"approvals_required":         {"2"},
		"max_ttl_days":               {"180"},
		"request_ttl_days":           {"7"},
	})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "Cluster awi-ciroh saved.") {
		t.Fatalf("saving the policy: %d\n%s", r.StatusCode, r.Body)
	}
	p.wantAudited(portal.ActionClusterUpdated, 1)

	want := "Approved at once for verified @earthscope.org or @unavco.org addresses and for members of earthscope-admins. " +
		"Other requests need the approval of two 2i2c staff members."
	if form := alice.get("/requests/new"); !strings.Contains(html.UnescapeString(form.Body), want) {
		t.Errorf("the request form does not say %q:\n%s", want, form.Body)
	}
	if page := sam.get("/staff/clusters"); !strings.Contains(html.UnescapeString(page.Body), want) {
		t.Errorf("the clusters list does not say %q", want)
	}

	var list struct {
		Clusters []apiClusterJSON `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(alice.get("/api/v1/clusters").Body), &list); err != nil || len(list.Clusters) != 1 {
		t.Fatalf("GET /api/v1/clusters: %v %+v", err, list)
	}
	got := list.Clusters[0].Policy
	if strings.Join(got.AutoApprove.EmailDomains, ",") != "earthscope.org,unavco.org" ||
		strings.Join(got.AutoApprove.Groups, ",") != "earthscope-admins" ||
		got.ApprovalsRequired != 2 || got.MaxTTLDays != 180 || got.RequestTTLDays != 7 {
		t.Errorf("the API shows the policy as %+v", got)
	}
	if list.Clusters[0].PolicySummary != want {
		t.Errorf("policy_summary %q, want %q", list.Clusters[0].PolicySummary, want)
	}
}

func TestAutoApprovedCustomerDownloadsAtOnce(t *testing.T) {
	p, alice, _, sam := newScene(t)
	sam.savePolicy(p, "awi-ciroh", url.Values{"auto_approve_email_domains": {"example.org"}})
	if form := alice.get("/requests/new"); !strings.Contains(form.Body, "Yours will be approved at once.") {
		t.Errorf("the request form does not tell alice she is approved at once")
	}
	key := newKey(t)
	id := alice.requestAccess("awi-ciroh", key.Recipient().String(), "Dashboards for the research team.")
	page := alice.get(fmt.Sprintf("/requests/%d", id))
	if !strings.Contains(html.UnescapeString(page.Body), "at once by the cluster's access policy (verified @example.org address)") {
		t.Errorf("the request page does not say the policy approved it:\n%s", page.Body)
	}
	// The expiry is on the page before the download.
	var expires time.Time
	if err := p.Store.Pool().QueryRow(t.Context(), `SELECT expires_at FROM credentials WHERE request_id = $1`, id).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	if want := "valid until " + expires.UTC().Format("2006-01-02 15:04 UTC"); !strings.Contains(page.Body, want) {
		t.Errorf("the request page does not say %q", want)
	}
	ciphertext, _ := alice.download(id)
	if file := decryptWith(t, ciphertext, key); !strings.Contains(file, "Prometheus URL:  https://prometheus.awi-ciroh.2i2c.cloud") {
		t.Errorf("credentials.txt:\n%s", file)
	}
	// Staff were told after the fact, and nobody was asked to review.
	if n := p.count(`SELECT count(*) FROM messages WHERE event = 'request.auto_approved' AND audience = 'staff'`); n == 0 {
		t.Errorf("staff were not told of the approval")
	}
	if n := p.count(`SELECT count(*) FROM messages WHERE event = 'request.created'`); n != 0 {
		t.Errorf("%d messages ask staff to review an approved request", n)
	}
	if q := sam.get("/staff/requests"); strings.Contains(q.Body, fmt.Sprintf(`id="request-%d"`, id)) {
		t.Errorf("the approved request is in the queue")
	}
}

func TestTwoPersonApprovalOverHTTP(t *testing.T) {
	p, alice, _, sam := newScene(t)
	sam.savePolicy(p, "awi-ciroh", url.Values{"approvals_required": {"2"}})
	key := newKey(t)
	id := alice.requestAccess("awi-ciroh", key.Recipient().String(), "Dashboards for the research team.")
	if page := alice.get(fmt.Sprintf("/requests/%d", id)); !strings.Contains(page.Body, "Waiting for the approval of two 2i2c staff members: 0 of 2") {
		t.Errorf("the customer is not told two approvals are needed:\n%s", page.Body)
	}

	r := sam.approve(id, "Looks right.")
	if !strings.Contains(r.Body, "1 of 2 approvals") {
		t.Errorf("after the first approval the queue says:\n%s", r.Body)
	}
	if !strings.Contains(r.Body, "1 of 2 approvals: sam@2i2c.org") {
		t.Errorf("the queue does not show who approved:\n%s", r.Body)
	}
	if n := p.count(`SELECT count(*) FROM credentials`); n != 0 {
		t.Fatalf("%d credentials after one of two approvals", n)
	}

	// The same person again, by the API: 409 with a message; nothing changes.
	before := p.snapshot()
	again := sam.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", id), `{"note": "me again"}`)
	if again.StatusCode != http.StatusConflict || !strings.Contains(again.Body, "You approved this request already") {
		t.Errorf("a second approval by the same person: %d %s", again.StatusCode, again.Body)
	}
	if p.snapshot() != before {
		t.Errorf("a refused approval changed the data")
	}

	kai := p.signedIn("kai@2i2c.org")
	r = kai.approve(id, "Agreed.")
	if !strings.Contains(r.Body, "approved: credential") {
		t.Errorf("the second approval did not issue:\n%s", r.Body)
	}
	ciphertext, _ := alice.download(id)
	decryptWith(t, ciphertext, key)

	var req apiRequestJSON
	if err := json.Unmarshal([]byte(alice.get(fmt.Sprintf("/api/v1/requests/%d", id)).Body), &req); err != nil {
		t.Fatal(err)
	}
	if strings.Join(req.Approvals, ",") != "sam@2i2c.org,kai@2i2c.org" || req.ApprovalsRequired != 2 || req.DecidedBy != "kai@2i2c.org" {
		t.Errorf("the API shows approvals %v of %d, decided by %s", req.Approvals, req.ApprovalsRequired, req.DecidedBy)
	}
}

func TestLifetimeLongerThanTheClusterAllowsIsRefused(t *testing.T) {
	p, alice, _, sam := newScene(t)
	sam.savePolicy(p, "awi-ciroh", url.Values{"max_ttl_days": {"120"}})
	id := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	before := p.snapshot()

	tooLong := time.Now().UTC().AddDate(0, 0, 200).Format(time.DateOnly)
	r := sam.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", id), `{"expires_on": "`+tooLong+`"}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "at most 120 days") {
		t.Errorf("a lifetime beyond the cluster's longest: %d %s", r.StatusCode, r.Body)
	}
	r = sam.apiPost(fmt.Sprintf("/api/v1/requests/%d/approve", id), `{"expires_on": "next tuesday"}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "YYYY-MM-DD") {
		t.Errorf("an unreadable day: %d %s", r.StatusCode, r.Body)
	}
	if p.snapshot() != before {
		t.Errorf("a refused approval changed the data")
	}

	// From the approval's confirmation form, a shorter one.
	q := sam.get(fmt.Sprintf("/staff/requests/%d/approve", id))
	if !strings.Contains(q.Body, `max="`+time.Now().UTC().AddDate(0, 0, 120).Format(time.DateOnly)+`"`) {
		t.Errorf("the approve form does not offer the longest lifetime as its limit:\n%s", q.Body)
	}
	shorter := time.Now().UTC().AddDate(0, 0, 30)
	done := sam.post(fmt.Sprintf("/staff/requests/%d/approve", id), url.Values{"csrf": {csrfToken(t, q.Body)},
		"expires_on": {shorter.Format(time.DateOnly)}})
	if want := "valid until " + shorter.AddDate(0, 0, 1).Format("2 Jan 2006"); !strings.Contains(done.Body, want) {
		t.Errorf("approving with a shorter lifetime: want %q in\n%s", want, done.Body)
	}
}

func TestUnknownPolicyKeysAreRefusedByTheAPI(t *testing.T) {
	p, _, _, sam := newScene(t)
	before := p.count(`SELECT count(*) FROM clusters`)

	r := sam.apiPost("/api/v1/clusters", `{"name": "earthscope", "prometheus_url": "https://prometheus.earthscope.2i2c.cloud",
		"policy": {"auto_aprove": {"email_domains": ["earthscope.org"]}}}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "auto_aprove") {
		t.Errorf("an unknown policy key: %d %s", r.StatusCode, r.Body)
	}
	r = sam.apiSend(http.MethodPut, "/api/v1/clusters/awi-ciroh", `{"prometheus_url": "https://prometheus.awi-ciroh.2i2c.cloud",
		"policy": {"approvals_required": 2, "max_ttl": 10}}`)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "max_ttl") {
		t.Errorf("an unknown policy key in a replacement: %d %s", r.StatusCode, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM clusters`); n != before {
		t.Errorf("%d clusters, want %d", n, before)
	}
	if n := p.count(`SELECT count(*) FROM clusters WHERE approvals_required <> 1`); n != 0 {
		t.Errorf("a refused policy was stored")
	}

	// What the API does take: a new cluster with a policy, then a change.
	r = sam.apiPost("/api/v1/clusters", `{"name": "earthscope", "prometheus_url": "https://prometheus.earthscope.2i2c.cloud",
		"policy": {"auto_approve": {"email_domains": ["earthscope.org"]}, "max_ttl_days": 180}}`)
	if r.StatusCode != http.StatusCreated || r.Header.Get("Location") != "/api/v1/clusters/earthscope" {
		t.Fatalf("creating a cluster: %d %s", r.StatusCode, r.Body)
	}
	r = sam.apiSend(http.MethodPut, "/api/v1/clusters/earthscope", `{"prometheus_url": "https://prometheus.earthscope.2i2c.cloud",
		"policy": {"approvals_required": 2}}`)
	var c apiClusterJSON
	if err := json.Unmarshal([]byte(r.Body), &c); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("replacing a cluster: %d %s", r.StatusCode, r.Body)
	}
	if c.Policy.ApprovalsRequired != 2 || len(c.Policy.AutoApprove.EmailDomains) != 0 || c.CredentialLifetimeDays != 90 || !c.Enabled {
		t.Errorf("after the replacement: %+v", c)
	}
	// Customers may not.
	alice := p.signedIn("alice@example.org")
	if r := alice.apiSend(http.MethodPut, "/api/v1/clusters/earthscope", `{"prometheus_url": "https://x.example"}`); r.StatusCode != http.StatusForbidden {
		t.Errorf("a customer replacing a cluster: %d", r.StatusCode)
	}
}

// Item 10 of the attack review: a cluster that saves is one whose
// credentials can be issued, and whose name cannot forge a line of
// credentials.txt.
func TestClusterFieldsThatWouldBreakIssuanceAreRefused(t *testing.T) {
	p, alice, _, sam := newScene(t)
	for _, tt := range []struct {
		field, value, says string
	}{
		{"prometheus_url", `https://prometheus.awi-ciroh.2i2c.cloud/x'"`, "no query, credentials, spaces, quotes or backslashes"},
		{"prometheus_url", `https://prometheus.awi-ciroh.2i2c.cloud/a\b`, "quotes or backslashes"},
		{"display_name", "AWI\nPassword:        hunter2", "single line"},
		{"display_name", "AWI\tCIROH", "single line"},
	} {
		stored := func() string {
			var s string
			if err := p.Store.Pool().QueryRow(t.Context(), `SELECT (SELECT json_agg(c)::text FROM clusters c) || (SELECT count(*) FROM audit_events)`).Scan(&s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		before := stored()
		r := sam.savePolicy(p, "awi-ciroh", url.Values{tt.field: {tt.value}})
		if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, tt.says) {
			t.Errorf("%s %q: %d, want 422 saying %q\n%s", tt.field, tt.value, r.StatusCode, tt.says, r.Body)
		}
		if stored() != before {
			t.Errorf("%s %q was stored", tt.field, tt.value)
		}
	}
	// The cluster still issues.
	p.issue(alice, sam, "awi-ciroh")
}
