package server

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/pglocal"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/smtptest"
)

// chat is a Slack-compatible incoming webhook in the test process: it keeps
// the text of every post, after failing the first fails of them.
type chat struct {
	*httptest.Server
	mu    sync.Mutex
	fails int
	posts []string
}

func newChat(t *testing.T, fails int) *chat {
	t.Helper()
	c := &chat{fails: fails}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Text string }
		err := json.NewDecoder(r.Body).Decode(&body)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fails > 0 {
			c.fails--
			http.Error(w, "the chat is down", http.StatusServiceUnavailable)
			return
		}
		if err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON body", http.StatusBadRequest)
			return
		}
		c.posts = append(c.posts, body.Text)
	}))
	t.Cleanup(c.Close)
	return c
}

// waitFor waits until n posts arrived and returns them.
func (c *chat) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		posts := append([]string(nil), c.posts...)
		c.mu.Unlock()
		if len(posts) >= n {
			return posts
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhook posts after 10 s, want %d", len(posts), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deliveringPortal is a portal whose messages go to a real SMTP server and
// a chat webhook in the test process.
func deliveringPortal(t *testing.T, hook *chat) (*testPortal, *smtptest.Server) {
	t.Helper()
	mail := smtptest.Start(t, smtptest.Options{User: "portal", Password: "relay-password"})
	mailer, err := outbox.NewMailer(mail.URL("portal:relay-password"), "2i2c credential portal <credentials@example.org>")
	if err != nil {
		t.Fatal(err)
	}
	webhook, err := outbox.NewWebhook(hook.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newPortal(t, portalOptions{senders: map[portal.Channel]outbox.Sender{
		portal.ChannelEmail: mailer, portal.ChannelWebhook: webhook,
	}})
	p.addCluster("awi-ciroh")
	return p, mail
}

// mailTo is the mail to addr among ms, with its text and HTML; it fails
// the test unless there is exactly one.
func mailTo(t *testing.T, ms []*smtptest.Message, addr string) (subject, text, html string) {
	t.Helper()
	var found []*smtptest.Message
	for _, m := range ms {
		for _, to := range m.To {
			if to == addr {
				found = append(found, m)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d messages to %s, want 1", len(found), addr)
	}
	text, html = found[0].Bodies(t)
	return found[0].Header(t, "Subject"), text, html
}

// TestMessagesReachPeople: a new request reaches the staff address and the
// webhook, each with a link to the request; approval and denial reach the
// customer, with the note.
func TestMessagesReachPeople(t *testing.T) {
	t.Parallel()
	hook := newChat(t, 0)
	p, mail := deliveringPortal(t, hook)
	alice, bob, sam := p.signedIn("alice@example.org"), p.signedIn("bob@example.org"), p.signedIn("sam@2i2c.org")

	id := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	link := fmt.Sprintf("%s/staff/requests#request-%d", p.URL, id)
	subject, text, html := mailTo(t, mail.WaitFor(t, 1, 10*time.Second), testStaffAddress)
	if !strings.Contains(subject, "alice@example.org") || !strings.Contains(subject, "awi-ciroh") {
		t.Errorf("staff subject %q does not say who asks for what", subject)
	}
	if !strings.Contains(text, link) || !strings.Contains(html, `href="`+link+`"`) {
		t.Errorf("staff mail does not link to %s:\n%s\n%s", link, text, html)
	}
	if !strings.Contains(text, "> Dashboards for the research team.") {
		t.Errorf("staff mail does not quote the justification:\n%s", text)
	}
	if posts := hook.waitFor(t, 1); !strings.Contains(posts[0], "<"+link+"|") {
		t.Errorf("webhook post does not link to %s: %q", link, posts[0])
	}
	// The link opens the request in the queue, for staff.
	if r := sam.get(link); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, fmt.Sprintf(`id="request-%d"`, id)) {
		t.Errorf("the staff link gives %d without the request", r.StatusCode)
	}

	sam.approve(id, "Welcome to the dashboards.")
	subject, text, _ = mailTo(t, mail.WaitFor(t, 2, 10*time.Second), "alice@example.org")
	if !strings.Contains(subject, "ready") || !strings.Contains(text, "> Welcome to the dashboards.") ||
		!strings.Contains(text, fmt.Sprintf("%s/requests/%d", p.URL, id)) {
		t.Errorf("approval mail %q lacks the note or the link:\n%s", subject, text)
	}

	denied := bob.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Curious about the cluster.")
	mail.WaitFor(t, 3, 10*time.Second)
	q := sam.get("/staff/requests")
	sam.post(fmt.Sprintf("/staff/requests/%d/deny", denied), url.Values{"csrf": {csrfToken(t, q.Body)}, "note": {"Ask your hub admin first."}})
	subject, text, _ = mailTo(t, mail.WaitFor(t, 4, 10*time.Second), "bob@example.org")
	if !strings.Contains(subject, "denied") || !strings.Contains(text, "> Ask your hub admin first.") {
		t.Errorf("denial mail %q lacks the note:\n%s", subject, text)
	}
}

// TestFailingReceiverIsRetried: a webhook that fails twice gets the message
// on the third try, and staff see the attempts and the last error.
func TestFailingReceiverIsRetried(t *testing.T) {
	t.Parallel()
	hook := newChat(t, 2)
	p, _ := deliveringPortal(t, hook)
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	id := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	if posts := hook.waitFor(t, 1); !strings.Contains(posts[0], fmt.Sprintf("#request-%d|", id)) {
		t.Fatalf("webhook post %q is not about request %d", posts[0], id)
	}
	rows := regexp.MustCompile(`(?s)<tr id="message-\d+">.*?</tr>`)
	var got string
	for deadline := time.Now().Add(5 * time.Second); got == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, row := range rows.FindAllString(sam.get("/staff/notifications?status=sent").Body, -1) {
			if strings.Contains(row, "staff webhook") {
				got = row
			}
		}
	}
	if !strings.Contains(got, `<td data-label="Attempts">3</td>`) || !strings.Contains(got, "503") {
		t.Errorf("the webhook's row does not show 3 attempts and the last error:\n%s", got)
	}
}

// TestNoSecretInAnyMessage follows a whole flow (request, approve,
// download, report compromised, renew, a download and a sync token rotated
// by scripts with personal access tokens) and finds no password, private
// key, sync token, access token, cookie value or ciphertext in any message
// sent, nor in the outbox, nor (the session cookies included) anywhere in
// the database, its audit log, the logs or a pg_dump of it.
func TestNoSecretInAnyMessage(t *testing.T) {
	t.Parallel()
	hook := newChat(t, 0)
	p, mail := deliveringPortal(t, hook)
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")

	key := newKey(t)
	id := alice.requestAccess("awi-ciroh", key.Recipient().String(), "Dashboards for the research team.")
	sam.approve(id, "Welcome.")
	ciphertext, _ := alice.download(id)
	file := decryptWith(t, ciphertext, key)
	password := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(file)[1]
	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, id)
	credPage := fmt.Sprintf("/credentials/%d", credID)
	// A script with alice's personal access token downloads the file, a
	// state change that is counted and audited.
	alicePAT, _ := alice.makeToken("download job", "read")
	if r := p.script(alicePAT).call(http.MethodGet, fmt.Sprintf("/api/v1/credentials/%d/credentials.txt.age", credID), ""); r.StatusCode != http.StatusOK {
		t.Fatalf("download with a token: %d %s", r.StatusCode, r.Body)
	}
	alice.submit(credPage, credPage+"/report-compromised", url.Values{"details": {"left it in a public notebook"}})
	if r := alice.submit(credPage, credPage+"/renew", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("renew: %d", r.StatusCode)
	}
	// A script with sam's personal access token rotates the sync token.
	samPAT, _ := sam.makeToken("cluster admin", "admin")
	r := p.script(samPAT).call(http.MethodPost, "/api/v1/clusters/awi-ciroh/sync-token", "{}")
	var rotated struct{ Token string }
	if err := json.Unmarshal([]byte(r.Body), &rotated); err != nil || r.StatusCode != http.StatusOK || rotated.Token == "" {
		t.Fatalf("sync token with a token: %d %s", r.StatusCode, r.Body)
	}
	token := rotated.Token

	// request, approval, compromise, renewal: staff mail ×3, alice ×1
	sent := mail.WaitFor(t, 4, 10*time.Second)
	posts := hook.waitFor(t, 3)
	// A receiver has a message a moment before the worker records it sent.
	unsent := func() int { return p.count(`SELECT count(*) FROM messages WHERE status <> 'sent'`) }
	for deadline := time.Now().Add(5 * time.Second); unsent() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := unsent(); n != 0 {
		t.Errorf("%d messages not sent", n)
	}
	var everything []string
	for _, m := range sent {
		text, html := m.Bodies(t)
		everything = append(everything, string(m.Data), text, html)
	}
	everything = append(everything, posts...)
	secrets := map[string]string{
		"the password":            password,
		"the private key":         key.String(),
		"the sync token":          token,
		"the ciphertext's header": "age-encryption.org/v1",
		"the ciphertext":          base64.StdEncoding.EncodeToString(ciphertext[len(ciphertext)-48:]),
		"a password hash":         "$2a$",
		"alice's access token":    alicePAT,
		"sam's access token":      samPAT,
	}
	for what, secret := range secrets {
		if what != "a password hash" { // the credentials table holds hashes, as it must
			p.assertSecretNowhere(t, secret)
		}
	}
	// The session cookies: the database holds only their hashes.
	for _, b := range []*browser{alice, sam} {
		u, _ := url.Parse(p.URL)
		for _, c := range b.client.Jar.Cookies(u) {
			secrets["cookie "+c.Name] = c.Value
			p.assertSecretNowhere(t, c.Value)
		}
	}
	for what, secret := range secrets {
		for i, s := range everything {
			if strings.Contains(s, secret) {
				t.Errorf("%s is in message part %d:\n%s", what, i, s)
			}
		}
	}
	if n := p.count(`SELECT count(*) FROM messages m WHERE strpos(row_to_json(m)::text, 'age-encryption.org') > 0
		OR strpos(row_to_json(m)::text, '$2a$') > 0`); n != 0 {
		t.Errorf("%d outbox rows hold a ciphertext or a hash", n)
	}
	// The raw bytes too: a message is text, and a ciphertext is not.
	for _, m := range sent {
		if strings.Contains(string(m.Data), string(ciphertext[len(ciphertext)-32:])) {
			t.Error("the ciphertext's bytes are in a mail")
		}
	}

	// What a backup holds: pg_dump of the whole database, every table, in
	// text and (for bytes) in the hex pg_dump writes them in.
	dump := p.pgDump(t)
	for what, secret := range secrets {
		if what == "a password hash" || strings.HasPrefix(what, "the ciphertext") {
			continue // the credentials table holds hashes and age files, as it must
		}
		if strings.Contains(dump, secret) || strings.Contains(dump, hex.EncodeToString([]byte(secret))) {
			t.Errorf("%s is in a pg_dump of the database", what)
		}
	}
}

// pgDump is a data-only pg_dump of the portal's database, made with this
// machine's PostgreSQL client.
func (p *testPortal) pgDump(t *testing.T) string {
	t.Helper()
	// Beside the server the tests run, else on PATH (postgresql-client).
	pgDump, err := exec.LookPath("pg_dump")
	if dir, ferr := pglocal.FindBinaries(); ferr == nil {
		if _, serr := os.Stat(filepath.Join(dir, "pg_dump")); serr == nil {
			pgDump, err = filepath.Join(dir, "pg_dump"), nil
		}
	}
	if err != nil {
		t.Fatalf("no pg_dump beside PostgreSQL or on PATH: install postgresql-client (%v)", err)
	}
	out, err := exec.CommandContext(t.Context(), pgDump, "--data-only", "--no-owner",
		"--dbname="+p.Store.Pool().Config().ConnString()).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !strings.Contains(string(out), "COPY public.sessions") && !strings.Contains(string(out), "sessions (") {
		t.Fatalf("the dump has no sessions table:\n%.2000s", out)
	}
	return string(out)
}

// TestExpiredRequestSaysWhatToDo: the page of a request that expired
// unanswered says so and offers a new request for the same cluster.
func TestExpiredRequestSaysWhatToDo(t *testing.T) {
	t.Parallel()
	p, alice, _, _ := newScene(t)
	id := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	p.exec(`UPDATE requests SET status = 'expired', decided_at = now() WHERE id = $1`, id)
	page := alice.get(fmt.Sprintf("/requests/%d", id)).Body
	for _, want := range []string{"status-expired", "expired. We are sorry for the wait", `href="/requests/new?cluster=awi-ciroh"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the expired request's page lacks %q", want)
		}
	}
	if r := alice.get("/api/v1/requests?status=expired"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, fmt.Sprintf(`"id":%d`, id)) {
		t.Errorf("GET /api/v1/requests?status=expired: %d %s", r.StatusCode, r.Body)
	}
}
