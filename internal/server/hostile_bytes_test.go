package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// sqlLooking are strings that would change a query built by pasting text
// into SQL; the store passes every value as a parameter, so they are text.
var sqlLooking = []string{`'; DROP TABLE requests; --`, `' OR '1'='1`, `1; SELECT pg_sleep(5) --`, `\'; $1 %_ \\ "x"`}

// hostileBytes are values PostgreSQL refuses (NUL, invalid UTF-8) or that
// no text field takes (control characters other than line breaks and tabs).
// Each holds "~h~" (which no key, fingerprint or hash holds) so that a test
// can look for them in the database.
var hostileBytes = []string{"~h~\x00~h~", "~h~\xff\xfe~h~", "~h~\x07~h~", "~h~\x1b[31m~h~", "~h~\u202E~h~"}

// TestSQLLookingTextIsStoredByteForByte types SQL-looking text into every
// free-text field of the forms (request, approve, deny, revoke, report
// compromised, token, cluster with its policy's groups) and reads each back
// byte for byte, as stored and as the API shows it; the tables are all
// still there.
func TestSQLLookingTextIsStoredByteForByte(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	for i, text := range sqlLooking {
		text := fmt.Sprintf("%d %s", i, text)
		get := func(query string, args ...any) string {
			t.Helper()
			var s string
			if err := p.Store.Pool().QueryRow(context.Background(), query, args...).Scan(&s); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return s
		}
		check := func(what, got string) {
			t.Helper()
			if got != text {
				t.Errorf("%s stored as %q, want %q byte for byte", what, got, text)
			}
		}
		approved := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), text)
		check("justification", get(`SELECT justification FROM requests WHERE id = $1`, approved))
		if r := alice.get(fmt.Sprintf("/api/v1/requests/%d", approved)); !strings.Contains(r.Body, jsonBody(t, text)) {
			t.Errorf("the API does not show the justification %q as typed: %s", text, r.Body)
		}
		sam.approve(approved, text)
		check("approve note", get(`SELECT decision_note FROM requests WHERE id = $1`, approved))
		cred := p.count(`SELECT id FROM credentials WHERE request_id = $1`, approved)
		sam.submit(fmt.Sprintf("/credentials/%d/revoke", cred), fmt.Sprintf("/credentials/%d/revoke", cred), url.Values{"reason": {text}})
		check("revoke reason", get(`SELECT revoke_reason FROM credentials WHERE id = $1`, cred))

		denied := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
		q := sam.get("/staff/requests")
		sam.post(fmt.Sprintf("/staff/requests/%d/deny", denied), url.Values{"csrf": {csrfToken(t, q.Body)}, "note": {text}})
		check("deny note", get(`SELECT decision_note FROM requests WHERE id = $1`, denied))

		reported := p.issue(alice, sam, "awi-ciroh")
		alice.submit(fmt.Sprintf("/credentials/%d", reported.ID), fmt.Sprintf("/credentials/%d/report-compromised", reported.ID), url.Values{"details": {text}})
		if got := get(`SELECT revoke_reason FROM credentials WHERE id = $1`, reported.ID); !strings.HasSuffix(got, ": "+text) {
			t.Errorf("compromise details stored as %q, want them to end with %q", got, text)
		}

		alice.submit("/tokens", "/tokens", url.Values{"name": {text}, "scopes": {"read"}, "expires_in_days": {"30"}})
		if n := p.count(`SELECT count(*) FROM api_tokens WHERE name = $1`, text); n != 1 {
			t.Errorf("%d tokens named %q, want 1", n, text)
		}

		name := fmt.Sprintf("sql-%d", i)
		group := strings.NewReplacer(" ", "", ",", "").Replace(text) // a group has no spaces or commas
		sam.submit("/staff/clusters/new", "/staff/clusters", url.Values{"name": {name}, "display_name": {text},
			"prometheus_url": {"https://prometheus." + name + ".2i2c.cloud"}, "credential_ttl_days": {"90"}, "enabled": {"on"},
			"note": {text}, "auto_approve_groups": {group}})
		check("cluster display name", get(`SELECT display_name FROM clusters WHERE name = $1`, name))
		check("cluster note", get(`SELECT note FROM clusters WHERE name = $1`, name))
		if r := sam.get("/api/v1/clusters/" + name); !strings.Contains(r.Body, jsonBody(t, text)) || !strings.Contains(r.Body, jsonBody(t, group)) {
			t.Errorf("the API does not show cluster %s's text and group as typed: %s", name, r.Body)
		}
	}
	for _, table := range []string{"requests", "credentials", "clusters", "api_tokens", "audit_events", "users"} {
		p.count(`SELECT count(*) FROM ` + table) // fails the test if it is gone
	}
	assertNoErrorLogged(t, p)
}

// TestHostileBytesInFormsAreRefused sends each of hostileBytes in each
// field of every form, the other fields valid: each is refused (a 4xx, or
// the form again with its message), none is a 500, nothing holding it is
// stored, and no ERROR is logged.
func TestHostileBytesInFormsAreRefused(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	pending := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	clusterID := p.count(`SELECT id FROM clusters WHERE name = 'awi-ciroh'`)
	cluster := url.Values{"name": {"leap"}, "display_name": {"LEAP"}, "prometheus_url": {"https://prometheus.leap.2i2c.cloud"},
		"credential_ttl_days": {"90"}, "enabled": {"on"}, "note": {"A note."}, "auto_approve_email_domains": {"example.org"},
		"auto_approve_groups": {"hub-admins"}, "approvals_required": {"1"}, "max_ttl_days": {"90"}, "request_ttl_days": {"14"}}
	forms := []struct {
		who          *browser
		page, action string
		fields       url.Values
	}{
		{alice, "/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"}, "public_key": {newKey(t).Recipient().String()},
			"justification": {"Dashboards for the research team."}}},
		{sam, fmt.Sprintf("/staff/requests/%d/approve", pending), fmt.Sprintf("/staff/requests/%d/approve", pending), url.Values{"note": {"Welcome."}, "expires_on": {""}}},
		{sam, fmt.Sprintf("/staff/requests/%d/deny", pending), fmt.Sprintf("/staff/requests/%d/deny", pending), url.Values{"note": {"Ask first."}}},
		{alice, fmt.Sprintf("/credentials/%d/revoke", cred.ID), fmt.Sprintf("/credentials/%d/revoke", cred.ID), url.Values{"reason": {"Project ended."}}},
		{alice, "/tokens", "/tokens", url.Values{"name": {"grafana job"}, "scopes": {"read"}, "expires_in_days": {"30"}}},
		{sam, "/staff/clusters/new", "/staff/clusters", cluster},
		{sam, fmt.Sprintf("/staff/clusters/%d/edit", clusterID), fmt.Sprintf("/staff/clusters/%d", clusterID), withValue(cluster, "name", "awi-ciroh")},
		{sam, "/staff/audit", "/staff/audit/verify", url.Values{}},
	}
	for _, f := range forms {
		for field := range f.fields {
			for _, bad := range hostileBytes {
				r := f.who.submit(f.page, f.action, withValue(f.fields, field, f.fields.Get(field)+bad))
				if r.StatusCode >= 500 {
					t.Errorf("%s with %q in %s: %d", f.action, bad, field, r.StatusCode)
				}
			}
		}
	}
	// The compromise report revokes whatever its details hold: last.
	for _, bad := range hostileBytes {
		r := alice.submit(fmt.Sprintf("/credentials/%d", cred.ID), fmt.Sprintf("/credentials/%d/report-compromised", cred.ID), url.Values{"details": {bad}})
		if r.StatusCode >= 500 {
			t.Errorf("compromise report with %q: %d", bad, r.StatusCode)
		}
	}
	if n := p.count(`SELECT count(*) FROM (
		SELECT r::text AS t FROM requests r UNION ALL SELECT c::text FROM credentials c UNION ALL
		SELECT k::text FROM clusters k UNION ALL SELECT a::text FROM api_tokens a UNION ALL
		SELECT e.details::text FROM audit_events e WHERE e.action <> 'access.refused') rows WHERE t LIKE '%~h~%'`); n != 0 {
		t.Errorf("%d rows hold a hostile value", n)
	}
	if n := p.count(`SELECT count(*) FROM requests WHERE id = $1 AND status = 'pending'`, pending); n != 1 {
		t.Error("a refused decision decided the request")
	}
	assertNoErrorLogged(t, p)
}

// withValue is v with field set to value.
func withValue(v url.Values, field, value string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	out.Set(field, value)
	return out
}

// TestHostileQueryParametersAndPathIDs sends SQL-looking strings and
// hostile bytes in every query parameter the pages and the API read, and
// in place of every :id and :name of every route the server registers
// (found from its router), with every method: each answer is below 500,
// every id that is not one is a 4xx, nothing changes, and no ERROR is
// logged.
func TestHostileQueryParametersAndPathIDs(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	p.issue(alice, sam, "awi-ciroh")
	alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	before := p.snapshot()

	values := append(append([]string{}, sqlLooking...), hostileBytes...)
	values = append(values, "99999999999999999999", "-1", "0x10", "1e3", strings.Repeat("9", 500))
	queries := map[string][]string{
		"/staff/audit":               {"actor", "action", "cluster", "subject_type", "subject_id", "from", "to", "q", "cursor"},
		"/api/v1/audit":              {"actor", "action", "cluster", "subject_type", "subject_id", "from", "to", "q", "cursor", "limit"},
		"/api/v1/audit/export":       {"format", "actor", "q", "from"},
		"/staff/audit/export.csv":    {"actor", "cluster", "q", "to"},
		"/staff/audit/export.jsonl":  {"action", "subject_id", "q"},
		"/staff/notifications":       {"status", "before"},
		"/staff/people":              {"q", "cursor"},
		"/staff/revocations":         {"cursor"},
		"/staff/requests":            {"cursor"},
		"/requests/new":              {"cluster", "renew"},
		"/api/v1/requests":           {"status", "cluster", "user", "cursor", "limit"},
		"/api/v1/revocations":        {"cluster", "cursor"},
		"/api/v1/tokens":             {"user"},
		"/dashboard":                 {"cursor"},
		"/api/v1/clusters/awi-ciroh": {"v"},
	}
	for path, params := range queries {
		for _, param := range params {
			for _, v := range values {
				u := path + "?" + param + "=" + url.QueryEscape(v)
				if path == "/api/v1/audit/export" && param != "format" {
					u += "&format=csv"
				}
				if r := sam.get(u); r.StatusCode >= 500 {
					t.Errorf("GET %s: %d", u, r.StatusCode)
				}
			}
		}
	}
	// The sign-in's own parameters, from a browser not signed in.
	for _, v := range values {
		anon := p.browser().noFollow()
		for _, u := range []string{"/login?next=" + url.QueryEscape(v), "/login?login_hint=" + url.QueryEscape(v),
			"/auth/callback?state=" + url.QueryEscape(v) + "&code=" + url.QueryEscape(v), "/auth/callback?error=" + url.QueryEscape(v)} {
			if r := anon.get(u); r.StatusCode >= 500 {
				t.Errorf("GET %s: %d", u, r.StatusCode)
			}
		}
	}

	ids := []string{"1%27", "1%27%20OR%20%271%27=%271", "1;DROP%20TABLE%20requests", "99999999999999999999", "-1", "0", "1%00", "%ff%fe", "0x1", "1e0"}
	token := csrfToken(t, sam.get("/staff/requests").Body)
	var tried int
	for _, rt := range p.Server.echo.Routes() {
		if !strings.Contains(rt.Path, ":id") && !strings.Contains(rt.Path, ":name") {
			continue
		}
		switch rt.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
		default:
			continue
		}
		for _, id := range ids {
			path := strings.NewReplacer(":id", id, ":name", id).Replace(rt.Path)
			var body, contentType string
			switch {
			case rt.Method == http.MethodGet:
			case strings.HasPrefix(path, "/api/"):
				body, contentType = "{}", "application/json"
			default:
				body, contentType = url.Values{"csrf": {token}}.Encode(), "application/x-www-form-urlencoded"
			}
			req, err := http.NewRequest(rt.Method, sam.abs(path), strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			tried++
			if r := sam.noFollow().do(req); r.StatusCode < 400 || r.StatusCode >= 500 {
				t.Errorf("%s %s: %d, want a 4xx\n%.300s", rt.Method, path, r.StatusCode, r.Body)
			}
		}
	}
	if tried < 200 {
		t.Errorf("only %d requests with hostile ids", tried)
	}
	if p.snapshot() != before {
		t.Error("hostile parameters changed what is stored")
	}
	assertNoErrorLogged(t, p)
}

// TestHostileBytesInJSONAreRefused sends each of hostileBytes in each text
// field of every JSON body the API takes, the other fields valid, invalid
// UTF-8 as the raw bytes (which encoding/json would quietly turn into
// U+FFFD): each is a 4xx, nothing holding it is stored, and no ERROR is
// logged.
func TestHostileBytesInJSONAreRefused(t *testing.T) {
	t.Parallel()
	p, alice, bob, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	pending := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	cluster := map[string]any{"name": "leap", "display_name": "LEAP", "prometheus_url": "https://prometheus.leap.2i2c.cloud",
		"credential_ttl_days": 90, "note": "A note."}
	calls := []struct {
		who          *browser
		method, path string
		body         map[string]any
	}{
		{bob, http.MethodPost, "/api/v1/requests", map[string]any{"cluster": "awi-ciroh", "public_key": newKey(t).Recipient().String(),
			"justification": "Dashboards for the research team."}},
		{sam, http.MethodPost, fmt.Sprintf("/api/v1/requests/%d/approve", pending), map[string]any{"note": "Welcome.", "expires_on": ""}},
		{sam, http.MethodPost, fmt.Sprintf("/api/v1/requests/%d/deny", pending), map[string]any{"note": "Ask first."}},
		{alice, http.MethodPost, fmt.Sprintf("/api/v1/credentials/%d/revoke", cred.ID), map[string]any{"reason": "Project ended."}},
		{alice, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "grafana job", "scopes": []string{"read"}, "expires_in_days": 30}},
		{sam, http.MethodPost, "/api/v1/clusters", cluster},
		{sam, http.MethodPut, "/api/v1/clusters/awi-ciroh", cluster},
	}
	var tried int
	for _, call := range calls {
		for field, valid := range call.body {
			s, ok := valid.(string)
			if !ok {
				continue
			}
			for _, bad := range hostileBytes {
				body := map[string]any{}
				for k, v := range call.body {
					body[k] = v
				}
				body[field] = s + bad
				raw := jsonBody(t, body)
				if !utf8.ValidString(bad) { // json.Marshal writes \ufffd for them
					raw = strings.Replace(raw, `\ufffd\ufffd`, bad[3:len(bad)-3], 1)
				}
				req, err := http.NewRequest(call.method, call.who.abs(call.path), strings.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				tried++
				if r := call.who.do(req); r.StatusCode < 400 || r.StatusCode >= 500 {
					t.Errorf("%s %s with %q in %s: %d, want a 4xx\n%s", call.method, call.path, bad, field, r.StatusCode, r.Body)
				}
			}
		}
	}
	if n := p.count(`SELECT count(*) FROM (
		SELECT r::text AS t FROM requests r UNION ALL SELECT c::text FROM credentials c UNION ALL
		SELECT k::text FROM clusters k UNION ALL SELECT a::text FROM api_tokens a UNION ALL
		SELECT e.details::text FROM audit_events e WHERE e.action <> 'access.refused') rows WHERE t LIKE '%~h~%'`); n != 0 {
		t.Errorf("%d rows hold a hostile value", n)

	}
	if tried < 70 {
		t.Errorf("only %d calls tried", tried)
	}
	assertNoErrorLogged(t, p)
}
