package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSignedInRefusalsCannotFloodTheAuditLog: a customer's script asks for
// a staff page 300 times. Every request is refused, but the permanent log
// gets a few rows: the refusal budget is per person, as it is per address
// for people not signed in. Another customer's refusal is still audited.
func TestSignedInRefusalsCannotFloodTheAuditLog(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	bob, alice := p.signedIn("bob@example.org"), p.signedIn("alice@example.org")
	const tries = 300
	start := time.Now()
	for i := range tries {
		path := "/staff/requests"
		if i%2 == 1 {
			path = "/api/v1/revocations"
		}
		if r := bob.get(path); r.StatusCode != http.StatusForbidden {
			t.Fatalf("GET %s as a customer: %d, want 403", path, r.StatusCode)
		}
	}
	took := time.Since(start)
	rows := p.count(`SELECT count(*) FROM audit_events WHERE action = 'access.refused' AND actor = 'bob@example.org'`)
	// The budget: a burst of 10, then one every 6 s.
	bound := 10 + int(took/(6*time.Second)) + 1
	t.Logf("%d refusals in %s wrote %d audit rows (bound %d)", tries, took.Round(time.Millisecond), rows, bound)
	if rows == 0 || rows > bound {
		t.Errorf("%d refusals of one customer wrote %d audit rows, want between 1 and %d", tries, rows, bound)
	}
	if !strings.Contains(p.logs.String(), "not audited, too many refusals") {
		t.Error("the refusals beyond the budget are not logged")
	}
	if r := alice.get("/staff/requests"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("alice on a staff page: %d", r.StatusCode)
	}
	if n := p.count(`SELECT count(*) FROM audit_events WHERE action = 'access.refused' AND actor = 'alice@example.org'`); n != 1 {
		t.Errorf("alice's refusal: %d audit rows, want 1: bob's flood must not use up her budget", n)
	}
}

// TestNewRequestsAndRenewalsShareOneBudget: once a person's script has used
// up the budget of new requests through the API, the request form and
// renewals (page and API) are refused too, instead of each route granting a
// budget of its own.
func TestNewRequestsAndRenewalsShareOneBudget(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	limited := false
	for range 100 {
		r := alice.apiPost("/api/v1/requests", `{"cluster":"awi-ciroh","public_key":"nonsense","justification":"Looping script."}`)
		if r.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("100 new requests in a row were never limited")
	}
	// The budget refills one request every 10 seconds: at most one of the
	// attempts below may fall on a refill.
	page := alice.get("/dashboard")
	token := csrfToken(t, page.Body)
	passed := 0
	for _, attempt := range []func() response{
		func() response {
			return alice.post("/requests", url.Values{"csrf": {token}, "cluster": {"awi-ciroh"}, "public_key": {"nonsense"}, "justification": {"Looping script."}})
		},
		func() response { return alice.apiPost("/api/v1/credentials/999/renew", `{}`) },
		func() response { return alice.post("/credentials/999/renew", url.Values{"csrf": {token}}) },
		func() response { return alice.apiPost("/api/v1/credentials/998/renew", `{}`) },
		func() response { return alice.post("/credentials/998/renew", url.Values{"csrf": {token}}) },
		func() response {
			return alice.post("/requests", url.Values{"csrf": {token}, "cluster": {"awi-ciroh"}, "public_key": {"nonsense"}, "justification": {"Looping script."}})
		},
	} {
		r := attempt()
		if r.StatusCode != http.StatusTooManyRequests {
			passed++
			t.Logf("%s %s: %d", r.Request.Method, r.Request.URL.Path, r.StatusCode)
		}
	}
	if passed > 1 {
		t.Errorf("%d of 6 requests and renewals passed after the budget was used up, want at most 1", passed)
	}
	if n := p.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored", n)
	}
}
