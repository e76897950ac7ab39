package server

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/net/html"

	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/smtptest"
)

// markup is a payload for one free-text field: its marker says which field
// it was typed in, and the rest, without a space (a group name has none), is what an attacker would try: breaking out
// of an attribute or a textarea, a script, an event handler, a template
// action, Slack's mentions and links, and an entity that must not be
// decoded twice. It fits the shortest limit (100 characters).
func markup(marker string) string {
	return marker + `"><img/src="x"/onerror=y()><script>x()</script></textarea>{{.}}<!channel><https://e.x|c>@here&amp;`
}

// markupLong is markup with a javascript: URL too, for the fields that
// take more than 100 characters.
func markupLong(marker string) string { return markup(marker) + " javascript:alert(1)" }

// freeTextField is a field whose text the portal shows back, with the
// payload typed into it and where it is seen.
type freeTextField struct {
	name, payload string
	// pages are the pages that show it (by the names the test gives
	// them), messages the messages (mail subjects) that quote it.
	pages, messages []string
}

// TestMarkupInFreeTextComesBackEscaped types markup into every free-text
// field the portal keeps and shows (found from every portal.CleanText and
// CleanLine call and every form; the list is below), signs in as a person
// whose provider sends markup as the display name and the group, and then
// opens every page a customer and staff have, both audit exports, every
// mail and every webhook post. On each page and in each mail's HTML part no
// element or attribute came from the payload (no img, no inline script, no
// on* handler, no javascript: link) and the payload reads back as the text
// typed; the exports keep it as data (CSV cells, one JSON object a line);
// the webhook, Slack's mrkdwn, has <, > and & escaped as Slack asks, so no
// <!channel> mention or disguised link reaches the channel, and a bare
// @here notifies no one either.
func TestMarkupInFreeTextComesBackEscaped(t *testing.T) {
	t.Parallel()
	// The fields: every portal.CleanText and CleanLine call (justification,
	// decision notes, revoke reason, compromise details, token name, the
	// cluster's display name and note, the policy's groups and domains, the
	// audit and people searches) and every text the portal keeps from a
	// provider (name, groups). Domains and searches are not kept: their
	// refusal and result pages are checked below.
	fields := []*freeTextField{
		{name: "display name (OIDC name claim)", payload: markup("NM")},
		{name: "group (OIDC groups claim) and the policy's auto-approve group", payload: markup("GR")},
		{name: "cluster display name", payload: markup("CD")},
		{name: "cluster note", payload: markupLong("CN")},
		{name: "request justification", payload: markupLong("J1")},
		{name: "approve note", payload: markupLong("AN")},
		{name: "deny note", payload: markupLong("DN")},
		{name: "justification of a pending request", payload: markupLong("J3")},
		{name: "revoke reason (staff)", payload: markupLong("RR")},
		{name: "compromise details", payload: markupLong("CC")},
		{name: "token name", payload: markup("TN")},
	}
	field := func(marker string) *freeTextField {
		for _, f := range fields {
			if strings.HasPrefix(f.payload, marker) {
				return f
			}
		}
		t.Fatalf("no field %s", marker)
		return nil
	}

	idp := startMockIdP(t)
	mail := smtptest.Start(t, smtptest.Options{})
	mailer, err := outbox.NewMailer(mail.URL(""), "2i2c credential portal <credentials@example.org>")
	if err != nil {
		t.Fatal(err)
	}
	hook := newRawChat(t)
	webhook, err := outbox.NewWebhook(hook.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newPortal(t, portalOptions{issuer: idp.m.Issuer(), clientID: idp.m.ClientID, clientSecret: idp.m.ClientSecret,
		senders: map[portal.Channel]outbox.Sender{portal.ChannelEmail: mailer, portal.ChannelWebhook: webhook}})
	sam := p.browser()
	sam.signInVia(idp, &mockoidc.MockUser{Subject: "sam", Email: "sam@2i2c.org", EmailVerified: true, PreferredUsername: "Sam Staff"})
	alice := p.browser()
	if r := alice.signInVia(idp, &mockoidc.MockUser{Subject: "alice", Email: "alice@example.org", EmailVerified: true,
		PreferredUsername: field("NM").payload, Groups: []string{field("GR").payload}}); r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in with markup in the name: %d\n%s", r.StatusCode, r.Body)
	}

	// Staff add two clusters: leap, with markup in its names and note, and
	// auto, which approves alice's group at once.
	saveCluster := func(name, display, note, groups string) int64 {
		r := sam.submit("/staff/clusters/new", "/staff/clusters", url.Values{"name": {name}, "display_name": {display},
			"prometheus_url": {"https://prometheus." + name + ".2i2c.cloud"}, "credential_ttl_days": {"90"}, "enabled": {"on"},
			"note": {note}, "auto_approve_groups": {groups}})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("saving cluster %s: %d\n%s", name, r.StatusCode, r.Body[strings.Index(r.Body, "<main"):])
		}
		return int64(p.count(`SELECT id FROM clusters WHERE name = $1`, name))
	}
	leap := saveCluster("leap", field("CD").payload, field("CN").payload, "")
	saveCluster("auto", "Auto", "", field("GR").payload)

	key := func() string { return newKey(t).Recipient().String() }
	approved := alice.requestAccess("leap", key(), field("J1").payload)
	sam.approve(approved, field("AN").payload)
	denied := alice.requestAccess("leap", key(), "Dashboards for the research team.")
	q := sam.get("/staff/requests")
	sam.post(fmt.Sprintf("/staff/requests/%d/deny", denied), url.Values{"csrf": {csrfToken(t, q.Body)}, "note": {field("DN").payload}})
	pending := alice.requestAccess("leap", key(), field("J3").payload)
	auto := alice.requestAccess("auto", key(), "Dashboards for the research team.")
	cred := func(request int64) int64 {
		return int64(p.count(`SELECT id FROM credentials WHERE request_id = $1`, request))
	}
	revoked, compromised := cred(approved), cred(auto)
	if revoked == 0 || compromised == 0 {
		t.Fatalf("credentials %d and %d: the approval or the policy's group did not issue one", revoked, compromised)
	}
	sam.submit(fmt.Sprintf("/credentials/%d/revoke", revoked), fmt.Sprintf("/credentials/%d/revoke", revoked), url.Values{"reason": {field("RR").payload}})
	alice.submit(fmt.Sprintf("/credentials/%d", compromised), fmt.Sprintf("/credentials/%d/report-compromised", compromised),
		url.Values{"details": {field("CC").payload}})
	alice.submit("/tokens", "/tokens", url.Values{"name": {field("TN").payload}, "scopes": {"read"}, "expires_in_days": {"30"}})
	if n := p.count(`SELECT count(*) FROM api_tokens`); n != 1 {
		t.Fatalf("%d tokens made, want 1", n)
	}
	aliceID := p.count(`SELECT id FROM users WHERE email = 'alice@example.org'`)

	pages := []struct {
		name string
		b    *browser
		path string
	}{
		{"dashboard", alice, "/dashboard"},
		{"request form", alice, "/requests/new"},
		{"approved request", alice, fmt.Sprintf("/requests/%d", approved)},
		{"denied request", alice, fmt.Sprintf("/requests/%d", denied)},
		{"pending request", alice, fmt.Sprintf("/requests/%d", pending)},
		{"cancel confirmation", alice, fmt.Sprintf("/requests/%d/cancel", pending)},
		{"revoked credential", alice, fmt.Sprintf("/credentials/%d", revoked)},
		{"compromised credential", alice, fmt.Sprintf("/credentials/%d", compromised)},
		{"own sessions", alice, "/sessions"},
		{"tokens", alice, "/tokens"},
		{"staff queue", sam, "/staff/requests"},
		{"approve confirmation", sam, fmt.Sprintf("/staff/requests/%d/approve", pending)},
		{"deny confirmation", sam, fmt.Sprintf("/staff/requests/%d/deny", pending)},
		{"staff clusters", sam, "/staff/clusters"},
		{"cluster form", sam, fmt.Sprintf("/staff/clusters/%d/edit", leap)},
		{"sync token confirmation", sam, fmt.Sprintf("/staff/clusters/%d/sync-token", leap)},
		{"revocations", sam, "/staff/revocations"},
		{"people", sam, "/staff/people"},
		{"person's sessions", sam, fmt.Sprintf("/staff/people/%d/sessions", aliceID)},
		{"notifications", sam, "/staff/notifications"},
		{"audit", sam, "/staff/audit"},
		{"audit search", sam, "/staff/audit?q=" + url.QueryEscape(field("RR").payload)},
		{"people search", sam, "/staff/people?q=" + url.QueryEscape(field("NM").payload)},
	}
	for _, pg := range pages {
		r := pg.b.get(pg.path)
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s (%s): %d", pg.name, pg.path, r.StatusCode)
			continue
		}
		doc := parseHTML(t, pg.name, r.Body)
		for _, f := range fields {
			if showsAsTyped(t, pg.name, doc, f.payload) {
				f.pages = append(f.pages, pg.name)
			}
		}
	}

	// Forms shown again after a refusal show what was typed, in their
	// textareas and inputs, and messages may quote it.
	refusals := []struct {
		name, page, action string
		b                  *browser
		fields             url.Values
	}{
		{"request form refused for its key", "/requests/new", "/requests", alice, url.Values{"cluster": {"leap"},
			"public_key": {"age1 not a key"}, "justification": {field("J1").payload}}},
		{"cluster form refused for its domain", "/staff/clusters/new", "/staff/clusters", sam, url.Values{"name": {"leap2"},
			"display_name": {field("CD").payload}, "prometheus_url": {"https://prometheus.leap2.2i2c.cloud"}, "credential_ttl_days": {"90"},
			"note": {field("CN").payload}, "auto_approve_email_domains": {markup("ED")}}},
		{"cluster form refused for its group", "/staff/clusters/new", "/staff/clusters", sam, url.Values{"name": {"leap2"},
			"display_name": {"LEAP"}, "prometheus_url": {"https://prometheus.leap2.2i2c.cloud"}, "credential_ttl_days": {"90"},
			"auto_approve_groups": {markupLong("GS")}}},
		{"token form refused for its scope", "/tokens", "/tokens", alice, url.Values{"name": {field("TN").payload}, "scopes": {"root"},
			"expires_in_days": {"30"}}},
	}
	for _, rf := range refusals {
		r := rf.b.submit(rf.page, rf.action, rf.fields)
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422", rf.name, r.StatusCode)
		}
		doc := parseHTML(t, rf.name, r.Body)
		for _, f := range fields {
			if showsAsTyped(t, rf.name, doc, f.payload) {
				f.pages = append(f.pages, rf.name)
			}
		}
	}

	// Every mail: its HTML part holds no element of the payload's, and shows
	// the payload as text wherever its plain text part quotes it.
	mails := mail.WaitFor(t, 6, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // the last of them
	for _, m := range mail.Received() {
		subject := m.Header(t, "Subject")
		text, htmlPart := m.Bodies(t)
		doc := parseHTML(t, "mail "+subject, htmlPart)
		for _, f := range fields {
			if strings.Contains(text, f.payload) || strings.Contains(subject, f.payload) {
				if !showsAsTyped(t, "mail "+subject, doc, f.payload) {
					t.Errorf("mail %q quotes the %s in its text but does not show it as text in its HTML:\n%s", subject, f.name, htmlPart)
				}
				f.messages = append(f.messages, "mail", subject)
			}
		}
	}
	_ = mails

	// Every webhook post: only {"text"}, without parse or link_names that
	// would turn @here into a mention, and every <, > and & of the payload
	// escaped, so the only links are the portal's own.
	posts := hook.wait(t, 3)
	portalLink := regexp.MustCompile(`^<` + regexp.QuoteMeta(p.URL) + `/[^<>|\s]*\|[^<>]*>`)
	for _, raw := range posts {
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("webhook post is not JSON: %v\n%s", err, raw)
		}
		if keys := slices.Sorted(func(yield func(string) bool) {
			for k := range body {
				if !yield(k) {
					return
				}
			}
		}); !slices.Equal(keys, []string{"text"}) {
			t.Errorf("webhook post has fields %v, want text alone", keys)
		}
		text, _ := body["text"].(string)
		for i := strings.IndexByte(text, '<'); i >= 0; i = strings.IndexByte(text, '<') {
			if loc := portalLink.FindStringIndex(text[i:]); loc == nil {
				t.Errorf("webhook post has a < that is not the portal's own link, at %q", text[i:min(len(text), i+40)])
				break
			} else {
				text = text[i+loc[1]:]
			}
		}
		text, _ = body["text"].(string)
		if m := groupMention.FindString(text); m != "" {
			t.Errorf("webhook post mentions the whole channel with %q: %q", m, text)
		}
		for _, f := range fields {
			if strings.Contains(text, f.payload) {
				t.Errorf("webhook post has the %s unescaped: %q", f.name, text)
			}
			if strings.Contains(text, slackEscaped(f.payload)) {
				f.messages = append(f.messages, "webhook")
			}
		}
	}

	// Both exports keep the text as data.
	csvExport := sam.get("/staff/audit/export.csv")
	rows, err := csv.NewReader(strings.NewReader(csvExport.Body)).ReadAll()
	if err != nil || len(rows) < 10 {
		t.Fatalf("the CSV export does not read as CSV (%d rows): %v", len(rows), err)
	}
	jsonl := sam.get("/staff/audit/export.jsonl")
	lines := strings.Split(strings.TrimSuffix(jsonl.Body, "\n"), "\n")
	if len(lines) != len(rows)-1 {
		t.Errorf("%d JSON lines, %d CSV rows after the header", len(lines), len(rows)-1)
	}
	var decoded strings.Builder
	for i, line := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("JSON line %d is not a JSON object: %v\n%s", i+1, err, line)
		}
		jsonStrings(&decoded, e)
	}
	var cells strings.Builder
	for _, row := range rows {
		for _, cell := range row {
			var v any // the details cell is JSON
			if json.Unmarshal([]byte(cell), &v) == nil {
				jsonStrings(&cells, v)
			}
			cells.WriteString(cell + "\n")
		}
	}
	for _, f := range fields {
		if strings.Contains(decoded.String(), f.payload) {
			f.messages = append(f.messages, "JSON lines export")
		}
		if strings.Contains(cells.String(), f.payload) {
			f.messages = append(f.messages, "CSV export")
		}
	}

	// Coverage: each field reached the places a reader would expect; a
	// field shown nowhere would make its checks pass for nothing.
	want := map[string]struct{ pages, messages []string }{
		"NM": {[]string{"dashboard", "own sessions", "staff queue", "people", "person's sessions", "notifications", "people search"}, []string{"mail", "webhook"}},
		"GR": {[]string{"request form", "staff clusters", "audit"}, []string{"mail", "webhook", "JSON lines export", "CSV export"}},
		"CD": {[]string{"request form", "staff clusters", "cluster form", "audit", "cluster form refused for its domain"}, []string{"JSON lines export", "CSV export"}},
		"CN": {[]string{"request form", "cluster form", "audit", "cluster form refused for its domain"}, []string{"JSON lines export", "CSV export"}},
		"J1": {[]string{"approved request", "notifications", "request form refused for its key"}, []string{"mail", "webhook"}},
		"AN": {[]string{"approved request", "audit"}, []string{"mail", "JSON lines export", "CSV export"}},
		"DN": {[]string{"denied request", "audit"}, []string{"mail", "JSON lines export", "CSV export"}},
		"J3": {[]string{"pending request", "staff queue"}, []string{"mail", "webhook"}},
		"RR": {[]string{"revoked credential", "revocations", "audit", "audit search"}, []string{"mail", "JSON lines export", "CSV export"}},
		"CC": {[]string{"compromised credential", "revocations", "audit"}, []string{"mail", "webhook", "JSON lines export", "CSV export"}},
		"TN": {[]string{"tokens", "audit", "token form refused for its scope"}, []string{"JSON lines export", "CSV export"}},
	}
	for marker, w := range want {
		f := field(marker)
		for _, pg := range w.pages {
			if !slices.Contains(f.pages, pg) {
				t.Errorf("the %s is not shown on the %s page (shown on %v)", f.name, pg, f.pages)
			}
		}
		for _, m := range w.messages {
			if !slices.Contains(f.messages, m) {
				t.Errorf("the %s is not in the %s (in %v)", f.name, m, f.messages)
			}
		}
		t.Logf("%s: pages %v; messages and exports %v", f.name, f.pages, f.messages)
	}
	assertNoErrorLogged(t, p)
}

// parseHTML parses an HTML page or mail part and fails t for anything in it
// that markup typed by a person could have made: an img, a script that is
// not the portal's own file, an on* attribute, a javascript: URL.
func parseHTML(t *testing.T, name, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "img", "iframe", "object", "embed", "svg", "math":
			t.Errorf("%s: a <%s> element", name, n.Data)
		case "script":
			if src := attr(n, "src"); !strings.HasPrefix(src, "/static/") || n.FirstChild != nil {
				t.Errorf("%s: a script that is not the portal's file: src %q", name, src)
			}
		}
		for _, a := range n.Attr {
			v := strings.ToLower(strings.TrimSpace(a.Val))
			if strings.HasPrefix(a.Key, "on") || strings.HasPrefix(v, "javascript:") {
				t.Errorf("%s: <%s %s=%q>", name, n.Data, a.Key, a.Val)
			}
		}
	}
	return doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// showsAsTyped reports whether doc shows payload as the text typed: in one text
// node (a textarea's content included) or attribute value (an input's),
// or JSON-encoded in one (an audit event's details). A page that shows the
// field's marker but not the whole payload has mangled it, and fails t.
func showsAsTyped(t *testing.T, name string, doc *html.Node, payload string) bool {
	t.Helper()
	forms := []string{payload}
	for _, escapeHTML := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		_ = enc.Encode(payload)
		forms = append(forms, strings.Trim(strings.TrimSpace(b.String()), `"`))
	}
	marker := payload[:2]
	var sawMarker bool
	for n := range doc.Descendants() {
		values := []string{}
		if n.Type == html.TextNode {
			values = append(values, n.Data)
		}
		for _, a := range n.Attr {
			values = append(values, a.Val)
		}
		for _, v := range values {
			for _, form := range forms {
				if strings.Contains(v, form) {
					return true
				}
			}
			sawMarker = sawMarker || strings.Contains(v, marker+`"`) || strings.Contains(v, marker+`\"`)
		}
	}
	if sawMarker {
		t.Errorf("%s shows the text typed after %q, but not as typed", name, marker)
	}
	return false
}

// jsonStrings writes every string in v, a decoded JSON value, to b, one
// a line.
func jsonStrings(b *strings.Builder, v any) {
	switch v := v.(type) {
	case string:
		b.WriteString(v + "\n")
	case map[string]any:
		for _, x := range v {
			jsonStrings(b, x)
		}
	case []any:
		for _, x := range v {
			jsonStrings(b, x)
		}
	}
}

// slackEscaped is s as Slack asks text to be sent: &, < and > as entities;
// and the @here of markup's payload kept from notifying the channel by a
// word joiner.
func slackEscaped(s string) string {
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
	return strings.ReplaceAll(s, "@here", "@\u2060here")
}

// groupMention is a mention that notifies a whole channel, in Slack's
// syntax or as Mattermost and others read a bare one.
var groupMention = regexp.MustCompile(`(?i)<!(here|channel|everyone)|(^|[^\w.@-])@(here|channel|everyone|all)\b`)

// rawChat is a Slack-compatible incoming webhook that keeps each post's
// body as sent.
type rawChat struct {
	*httptest.Server
	mu    sync.Mutex
	posts [][]byte
}

func newRawChat(t *testing.T) *rawChat {
	t.Helper()
	c := &rawChat{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.posts = append(c.posts, body)
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

// wait waits for n posts, and a moment for any after them, and returns
// them all.
func (c *rawChat) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		got := len(c.posts)
		c.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhook posts after 10 s, want %d", got, n)
		}
	}
	time.Sleep(300 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.posts)
}

// TestCredentialsTxtKeepsItsShape: credentials.txt is plain text a person
// reads and a shell runs parts of. A cluster display name with markup is
// written into it as typed, on its one line, and the file has the lines of
// any other; one that would add a line ("Password: …" of an attacker's) is
// refused on the cluster form naming the field, and a cluster that holds
// one anyway (written to the database by other means) issues no credential.
func TestCredentialsTxtKeepsItsShape(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	display := markup("CT")
	c := testCluster("leap")
	c.DisplayName = display
	if err := p.Store.CreateCluster(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	file := func(cluster string) string {
		key := newKey(t)
		id := alice.requestAccess(cluster, key.Recipient().String(), "Dashboards for the research team.")
		sam.approve(id, "")
		ciphertext, _ := alice.download(id)
		return decryptWith(t, ciphertext, key)
	}
	plain, marked := file("awi-ciroh"), file("leap")
	if first, _, _ := strings.Cut(marked, "\n"); first != "Prometheus credentials for "+display {
		t.Errorf("credentials.txt's first line is %q, want the display name as typed", first)
	}
	if strings.Count(marked, "\n") != strings.Count(plain, "\n") || strings.Count(marked, "Password:") != strings.Count(plain, "Password:") {
		t.Errorf("a display name with markup changed the shape of credentials.txt:\n%s", marked)
	}

	r := sam.submit(fmt.Sprintf("/staff/clusters/%d/edit", c.ID), fmt.Sprintf("/staff/clusters/%d", c.ID), url.Values{"name": {"leap"},
		"display_name": {"LEAP\nPassword: attacker-chosen"}, "prometheus_url": {c.PrometheusURL}, "credential_ttl_days": {"90"}, "enabled": {"on"}})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `href="#display_name"`) || !strings.Contains(r.Body, "single line") {
		t.Errorf("a display name with a line break: %d\n%s", r.StatusCode, r.Body)
	}
	p.exec(`UPDATE clusters SET display_name = $1 WHERE id = $2`, "LEAP\nPassword: attacker-chosen", c.ID)
	id := alice.requestAccess("leap", newKey(t).Recipient().String(), "Dashboards for the research team.")
	sam.approve(id, "")
	if n := p.count(`SELECT count(*) FROM credentials WHERE request_id = $1`, id); n != 0 {
		t.Error("a cluster whose display name holds a line break issued a credential")
	}
	assertNoErrorLogged(t, p)
}
