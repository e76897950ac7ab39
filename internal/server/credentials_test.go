package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

func TestRenew(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")

	// Another customer can neither renew the credential nor draft its renewal.
	for what, r := range map[string]response{
		"renewing":      bob.apiPost(fmt.Sprintf("/api/v1/credentials/%d/renew", cred.ID), `{}`),
		"renewal draft": bob.get(fmt.Sprintf("/requests/new?renew=%d", cred.ID)),
	} {
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("another customer's %s: %d, want 404", what, r.StatusCode)
		}
	}
	// Renewing with another key: the form starts from the old request, key left out.
	draft := alice.get(fmt.Sprintf("/requests/new?renew=%d", cred.ID))
	if !strings.Contains(draft.Body, "Dashboards for the research team.") || !strings.Contains(draft.Body, `value="awi-ciroh" selected`) ||
		strings.Contains(draft.Body, ">age1") {
		t.Errorf("renewal draft:\n%s", draft.Body)
	}
	page := alice.get(fmt.Sprintf("/credentials/%d", cred.ID))
	r := alice.post(fmt.Sprintf("/credentials/%d/renew", cred.ID), url.Values{"csrf": {csrfToken(t, page.Body)}})
	if !requestPath.MatchString(r.Request.URL.Path) || !strings.Contains(r.Body, "pending") || !strings.Contains(r.Body, "Renewal requested") {
		t.Fatalf("renew: landed on %s\n%s", r.Request.URL, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM requests WHERE renews_credential_id = $1 AND status = 'pending'
		AND public_key = (SELECT public_key FROM requests WHERE id = (SELECT request_id FROM credentials WHERE id = $1))`, cred.ID); n != 1 {
		t.Errorf("%d pending renewals with the same key, want 1", n)
	}
	if n := p.count(`SELECT count(*) FROM credentials WHERE id = $1 AND revoked_at IS NULL`, cred.ID); n != 1 {
		t.Error("renewing revoked the old credential; it must stay valid until it expires")
	}
	// A second renewal while the first is pending points at it.
	r = alice.post(fmt.Sprintf("/credentials/%d/renew", cred.ID), url.Values{"csrf": {csrfToken(t, page.Body)}})
	if !strings.Contains(r.Body, "already have a pending request") {
		t.Errorf("second renewal: %s\n%s", r.Request.URL, r.Body)
	}
	// The pending renewal shows staff what it renews; approving it issues a new credential.
	renewal := p.count(`SELECT id FROM requests WHERE renews_credential_id = $1`, cred.ID)
	if q := sam.get("/staff/requests"); !strings.Contains(q.Body, fmt.Sprintf("credential %d", cred.ID)) {
		t.Error("the queue does not say which credential a renewal renews")
	}
	sam.approve(int64(renewal), "")
	if n := p.count(`SELECT count(*) FROM credentials WHERE user_id = (SELECT user_id FROM credentials WHERE id = $1)`, cred.ID); n != 2 {
		t.Errorf("%d credentials after the renewal, want 2", n)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	mine, staffs := p.issue(alice, sam, "awi-ciroh"), p.issue(bob, sam, "awi-ciroh")

	before := p.snapshot()
	if r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", mine.ID), `{"reason":"  "}`); r.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(r.Body, `"field":"reason"`) {
		t.Errorf("revoke without a reason: %d %s", r.StatusCode, r.Body)
	}
	if r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", staffs.ID), `{"reason":"mischief"}`); r.StatusCode != http.StatusNotFound {
		t.Errorf("revoking another customer's credential: %d, want 404", r.StatusCode)
	}
	if after := p.snapshot(); after != before {
		t.Error("refused revocations changed the database")
	}

	r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", mine.ID), `{"reason":"project ended"}`)
	var got struct {
		State        string `json:"state"`
		RevokeReason string `json:"revoke_reason"`
	}
	json.Unmarshal([]byte(r.Body), &got)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"state":"revoked"`) || got.RevokeReason != "project ended" {
		t.Errorf("owner revokes: %d %s", r.StatusCode, r.Body)
	}
	if r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", mine.ID), `{"reason":"again"}`); r.StatusCode != http.StatusConflict {
		t.Errorf("revoking twice: %d, want 409", r.StatusCode)
	}
	if r := alice.get(fmt.Sprintf("/credentials/%d/credentials.txt.age", mine.ID)); r.StatusCode != http.StatusConflict ||
		!strings.Contains(r.Body, "revoked") {
		t.Errorf("downloading a revoked credential: %d", r.StatusCode)
	}
	// Staff revoke anyone's, with a reason, from the page.
	r = sam.submit(fmt.Sprintf("/credentials/%d", staffs.ID), fmt.Sprintf("/credentials/%d/revoke", staffs.ID), url.Values{"reason": {"customer left the project"}})
	if !strings.Contains(r.Body, "is revoked") {
		t.Errorf("staff revoke: %s\n%s", r.Request.URL, r.Body)
	}
	if n := p.count(`SELECT count(*) FROM credentials WHERE revoked_at IS NOT NULL`); n != 2 {
		t.Errorf("%d revoked credentials, want 2", n)
	}
	// Revoked credentials stay in the history.
	if d := bob.get("/dashboard"); !strings.Contains(d.Body, "revoked") {
		t.Error("the dashboard no longer lists the revoked credential")
	}
}

func TestReportCompromised(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")

	if r := sam.apiPost(fmt.Sprintf("/api/v1/credentials/%d/report-compromised", cred.ID), `{}`); r.StatusCode != http.StatusNotFound {
		t.Errorf("staff reporting a customer's credential compromised: %d, want 404 (staff revoke instead)", r.StatusCode)
	}
	r := alice.submit(fmt.Sprintf("/credentials/%d", cred.ID), fmt.Sprintf("/credentials/%d/report-compromised", cred.ID),
		url.Values{"details": {"pasted in a public chat"}})
	if !strings.Contains(r.Body, "revoked and 2i2c staff are told") || !strings.Contains(r.Body, "/renew") {
		t.Errorf("after reporting: no confirmation or renewal offered\n%s", r.Body)
	}
	if n := p.count(`SELECT count(*) FROM credentials WHERE id = $1 AND compromised AND revoked_at IS NOT NULL`, cred.ID); n != 1 {
		t.Error("the credential is not revoked and flagged compromised")
	}
	if q := sam.get("/staff/requests"); !strings.Contains(q.Body, "1 credential was reported compromised this week") {
		t.Error("the staff queue does not flag the compromise report")
	}
	rev := sam.get("/staff/revocations")
	if !strings.Contains(rev.Body, cred.Username) || !strings.Contains(rev.Body, "compromised") || !strings.Contains(rev.Body, "pasted in a public chat") {
		t.Errorf("the revocations page does not flag it:\n%s", rev.Body)
	}
	var list struct {
		Revocations []struct {
			Username    string
			Compromised bool
		}
	}
	decodeJSON(t, sam.get("/api/v1/revocations"), &list)
	if len(list.Revocations) != 1 || list.Revocations[0].Username != cred.Username || !list.Revocations[0].Compromised {
		t.Errorf("GET /api/v1/revocations: %+v", list)
	}
	if r := alice.get("/api/v1/revocations"); r.StatusCode != http.StatusForbidden {
		t.Errorf("a customer reading the revocation list: %d, want 403", r.StatusCode)
	}
	if n := p.count(`SELECT count(*) FROM audit_events WHERE action = 'credential.reported_compromised' AND subject_id = $1`, cred.ID); n != 1 {
		t.Errorf("%d reported_compromised audit events, want 1", n)
	}
}

func TestExpiryReminders(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	wf := workflow.New(p.Store, workflow.Options{})
	ctx := context.Background()
	expireIn := func(days int) {
		_, err := p.Store.Pool().Exec(ctx, `UPDATE credentials SET issued_at = now() - interval '80 days',
			expires_at = now() + make_interval(days => $2) WHERE id = $1`, cred.ID, days)
		if err != nil {
			t.Fatal(err)
		}
	}
	record := func() int {
		n, err := wf.RecordDueReminders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := record(); n != 0 {
		t.Errorf("%d reminders for a credential 90 days from expiry", n)
	}
	expireIn(13)
	if n := record(); n != 1 {
		t.Errorf("13 days before expiry: %d reminders, want the 14-day one", n)
	}
	if n := record(); n != 0 {
		t.Errorf("recorded again: %d, want each reminder once", n)
	}
	expireIn(2)
	if n := record(); n != 1 {
		t.Errorf("2 days before expiry: %d reminders, want the 3-day one", n)
	}
	p.wantAudited(portal.ActionCredentialReminder, 2)
}

func TestDashboardOffersRenewalBeforeExpiry(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	if d := alice.get("/dashboard"); strings.Contains(d.Body, "expires in") {
		t.Error("a fresh credential is flagged as expiring")
	}
	if _, err := p.Store.Pool().Exec(context.Background(),
		`UPDATE credentials SET expires_at = now() + interval '5 days' WHERE id = $1`, cred.ID); err != nil {
		t.Fatal(err)
	}
	d := alice.get("/dashboard")
	if !strings.Contains(d.Body, "expires in 4 days") && !strings.Contains(d.Body, "expires in 5 days") {
		t.Errorf("a credential 5 days from expiry is not flagged:\n%s", d.Body)
	}
	if !strings.Contains(d.Body, fmt.Sprintf(`action="/credentials/%d/renew"`, cred.ID)) {
		t.Error("no renew button next to the expiring credential")
	}
}
