package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// TestOversizedBodiesAre413InPlainWords sends a body over the 64 KiB limit
// to every state-changing route the server registers (found from its
// router, so a new route is covered as it is added), once with a
// Content-Length and once chunked, without one. Each answers 413: a page
// in plain words for a form, a JSON error for the API, never echo's bare
// "Request Entity Too Large", never a 403 for a form cut short before its
// CSRF token; nothing is stored and nothing is logged as an ERROR.
func TestOversizedBodiesAre413InPlainWords(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	before := p.snapshot()
	token := csrfToken(t, sam.get("/staff/requests").Body)
	big := strings.Repeat("a", 65<<10)

	var routes int
	for _, rt := range p.Server.echo.Routes() {
		switch rt.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			continue
		}
		if strings.HasPrefix(rt.Path, "/oidc/") { // the development provider, not the portal
			continue
		}
		routes++
		path := strings.NewReplacer(":id", fmt.Sprint(cred.ID), ":name", "awi-ciroh").Replace(rt.Path)
		api := strings.HasPrefix(path, "/api/")
		body, contentType := url.Values{"csrf": {token}, "note": {big}}.Encode(), "application/x-www-form-urlencoded"
		if api {
			body, contentType = `{"note":"`+big+`"}`, "application/json"
		}
		for _, chunked := range []bool{false, true} {
			var r io.Reader = strings.NewReader(body)
			if chunked {
				r = io.MultiReader(r) // hides the length: sent chunked
			}
			req, err := http.NewRequest(rt.Method, sam.abs(path), r)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", contentType)
			resp := sam.do(req)
			name := fmt.Sprintf("%s %s (chunked %v)", rt.Method, path, chunked)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: %d, want 413\n%.400s", name, resp.StatusCode, resp.Body)
				continue
			}
			if api {
				var e apiError
				if json.Unmarshal([]byte(resp.Body), &e) != nil || e.Error != msgTooLarge {
					t.Errorf("%s: the API error is %s, want %q", name, resp.Body, msgTooLarge)
				}
				continue
			}
			if !strings.Contains(resp.Body, "That was too much to send") || !strings.Contains(resp.Body, "at most 64 KB") ||
				strings.Contains(resp.Body, "Request Entity Too Large") {
				t.Errorf("%s: the page does not say in plain words what was too much:\n%s", name, resp.Body)
			}
		}
	}
	if routes < 20 {
		t.Errorf("only %d state-changing routes found", routes)
	}
	if p.snapshot() != before {
		t.Error("an oversized body changed what is stored")
	}
	assertNoErrorLogged(t, p)
}

// TestOversizedFieldsAre422NamingTheFieldAndLimit: each free-text field one
// character over its limit, through the API and, for the request form, the
// page, is refused with a 422 whose message names the field and its limit,
// and nothing changes.
func TestOversizedFieldsAre422NamingTheFieldAndLimit(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	cred := p.issue(alice, sam, "awi-ciroh")
	pending := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	over := func(n int) string { return strings.Repeat("é", n+1) } // characters, not bytes, are counted
	key := newKey(t).Recipient().String()
	tests := []struct {
		who         *browser
		path, field string
		label       string
		limit       int
		body        map[string]any
	}{
		{alice, "/api/v1/requests", "justification", "justification", portal.MaxJustification,
			map[string]any{"cluster": "awi-ciroh", "public_key": key, "justification": over(portal.MaxJustification)}},
		{sam, fmt.Sprintf("/api/v1/requests/%d/approve", pending), "note", "note", portal.MaxJustification,
			map[string]any{"note": over(portal.MaxJustification)}},
		{sam, fmt.Sprintf("/api/v1/requests/%d/deny", pending), "note", "note", portal.MaxJustification,
			map[string]any{"note": over(portal.MaxJustification)}},
		{alice, fmt.Sprintf("/api/v1/credentials/%d/revoke", cred.ID), "reason", "reason", workflow.MaxReason,
			map[string]any{"reason": over(workflow.MaxReason)}},
		{alice, fmt.Sprintf("/api/v1/credentials/%d/report-compromised", cred.ID), "details", "details", workflow.MaxReason,
			map[string]any{"details": over(workflow.MaxReason)}},
		{alice, "/api/v1/tokens", "name", "name", workflow.MaxTokenName,
			map[string]any{"name": over(workflow.MaxTokenName), "scopes": []string{"read"}, "expires_in_days": 30}},
		{sam, "/api/v1/clusters", "display_name", "display name", portal.MaxClusterDisplayName,
			map[string]any{"name": "leap", "display_name": over(portal.MaxClusterDisplayName), "prometheus_url": "https://prometheus.leap.2i2c.cloud", "credential_ttl_days": 90}},
		{sam, "/api/v1/clusters", "note", "note", portal.MaxClusterNote,
			map[string]any{"name": "leap", "display_name": "LEAP", "prometheus_url": "https://prometheus.leap.2i2c.cloud", "credential_ttl_days": 90, "note": over(portal.MaxClusterNote)}},
	}
	before := p.snapshot()
	for _, tt := range tests {
		r := tt.who.apiPost(tt.path, jsonBody(t, tt.body))
		var e apiError
		_ = json.Unmarshal([]byte(r.Body), &e)
		want := fmt.Sprintf("The %s can be at most %d characters, not %d.", tt.label, tt.limit, tt.limit+1)
		if r.StatusCode != http.StatusUnprocessableEntity || e.Field != tt.field || !strings.Contains(e.Error, want) {
			t.Errorf("%s with %s over its limit: %d %s; want 422 on %s saying %q", tt.path, tt.field, r.StatusCode, r.Body, tt.field, want)
		}
	}
	page := alice.submit("/requests/new", "/requests", url.Values{"cluster": {"awi-ciroh"}, "public_key": {key},
		"justification": {over(portal.MaxJustification)}})
	if page.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(page.Body, fmt.Sprintf("The justification can be at most %d characters", portal.MaxJustification)) {
		t.Errorf("request form with a justification over its limit: %d\n%s", page.StatusCode, page.Body)
	}
	if p.snapshot() != before || p.count(`SELECT count(*) FROM clusters`) != 1 || p.count(`SELECT count(*) FROM api_tokens`) != 0 {
		t.Error("a field over its limit changed what is stored")
	}
	assertNoErrorLogged(t, p)
}

// assertNoErrorLogged fails t for each ERROR line p logged: hostile input
// is the client's problem, never the server's.
func assertNoErrorLogged(t *testing.T, p *testPortal) {
	t.Helper()
	for line := range strings.Lines(p.logs.String()) {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("an ERROR was logged: %s", line)
		}
	}
}
