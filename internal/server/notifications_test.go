package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// testMessage is a message to alice of her request's approval, as the
// workflow writes one.
func testMessage(subject string) *portal.Message {
	return &portal.Message{Event: portal.ActionRequestApproved, Audience: portal.AudienceCustomer, Channel: portal.ChannelEmail,
		Recipient: "alice@example.org", Subject: subject, Text: "Your request was approved.\nDownload it from the portal.",
		HTML: "<p>Your request was approved.</p>", Link: "http://portal.test/requests/1"}
}

// queueMessages writes ms to the portal's outbox as the workflow would:
// queued, due at once. No worker runs in tests, so they stay so.
func (p *testPortal) queueMessages(ms ...*portal.Message) {
	p.t.Helper()
	if err := p.Store.QueueMessages(context.Background(), ms...); err != nil {
		p.t.Fatal(err)
	}
}

// failMessage makes message id fail for good, as the worker does when its
// retries run out.
func (p *testPortal) failMessage(id int64, lastError string) {
	p.t.Helper()
	p.exec(`UPDATE messages SET status = 'failed', attempts = 5, last_error = $2 WHERE id = $1`, id, lastError)
}

// messageStatus is the stored status of message id.
func (p *testPortal) messageStatus(id int64) string {
	p.t.Helper()
	var s string
	if err := p.Store.Pool().QueryRow(context.Background(), `SELECT status FROM messages WHERE id = $1`, id).Scan(&s); err != nil {
		p.t.Fatal(err)
	}
	return s
}

func TestStaffSeeTheOutbox(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	m := testMessage("Your request #1 for awi-ciroh was approved")
	p.queueMessages(m)

	r := sam.get("/staff/notifications")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("/staff/notifications: %d\n%s", r.StatusCode, r.Body)
	}
	row := fmt.Sprintf(`id="message-%d"`, m.ID)
	for _, want := range []string{
		row,
		`<td data-label="Recipient">alice@example.org</td>`, // the recipient
		"Your request #1 for awi-ciroh was approved",        // the subject
		"Download it from the portal.",                      // the plain text, in its details
		`<span class="status status-queued">queued</span>`,
		`<code>request.approved</code>`,                // the event
		`<a href="/staff/notifications?status=failed"`, // a tab
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("the notifications page lacks %s", want)
		}
	}
	if strings.Contains(r.Body, "<p>Your request was approved.</p>") {
		t.Error("the notifications page inlines a message's HTML")
	}
	if strings.Contains(r.Body, "Retry now") {
		t.Error("a queued message offers a retry")
	}

	for _, tt := range []struct {
		name, path string
		status     int
		listed     bool
	}{
		{"the tab of its status", "/staff/notifications?status=queued", http.StatusOK, true},
		{"another tab", "/staff/notifications?status=sent", http.StatusOK, false},
		{"a status that is none", "/staff/notifications?status=lost", http.StatusUnprocessableEntity, false},
		{"a page before it", fmt.Sprintf("/staff/notifications?before=%d", m.ID), http.StatusOK, false},
		{"a page from after it", fmt.Sprintf("/staff/notifications?before=%d", m.ID+1), http.StatusOK, true},
		{"a page from nowhere", "/staff/notifications?before=soon", http.StatusUnprocessableEntity, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := sam.get(tt.path)
			if listed := strings.Contains(r.Body, row); r.StatusCode != tt.status || listed != tt.listed {
				t.Errorf("%s: %d, listed %t; want %d, listed %t\n%s", tt.path, r.StatusCode, listed, tt.status, tt.listed, r.Body)
			}
		})
	}

	// Customers get the refusal of every staff page.
	for _, path := range []string{"/staff/notifications", "/staff/notifications?status=failed"} {
		r := alice.get(path)
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Body, "staff only") || strings.Contains(r.Body, m.Subject) {
			t.Errorf("customer on %s: %d, want 403 with an explanation and no message", path, r.StatusCode)
		}
	}
}

func TestOutboxPagesOlder(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam := p.signedIn("sam@2i2c.org")
	var ms []*portal.Message
	for i := range workflow.DefaultOutboxPage + 5 {
		ms = append(ms, testMessage(fmt.Sprintf("Message number %d", i)))
	}
	p.queueMessages(ms...)
	oldest, newest := ms[0], ms[len(ms)-1]

	first := sam.get("/staff/notifications?status=queued")
	if !strings.Contains(first.Body, newest.Subject) || strings.Contains(first.Body, fmt.Sprintf(`id="message-%d"`, oldest.ID)) {
		t.Fatalf("the first page does not start with the newest message or reaches the oldest:\n%s", first.Body)
	}
	older := regexp.MustCompile(`href="(/staff/notifications\?[^"]+)" rel="next">Older</a>`).FindStringSubmatch(first.Body)
	if older == nil {
		t.Fatalf("the first page has no Older link:\n%s", first.Body)
	}
	u, _ := url.Parse(strings.ReplaceAll(older[1], "&amp;", "&"))
	if u.Query().Get("status") != "queued" || u.Query().Get("before") == "" {
		t.Errorf("the Older link %s loses the status or has no before", older[1])
	}
	second := sam.get(u.String())
	if second.StatusCode != http.StatusOK || !strings.Contains(second.Body, fmt.Sprintf(`id="message-%d"`, oldest.ID)) {
		t.Errorf("the older page: %d, without the oldest message\n%s", second.StatusCode, second.Body)
	}
	if n := strings.Count(second.Body, `<tr id="message-`); n != 5 {
		t.Errorf("the older page lists %d messages, want 5", n)
	}
	if strings.Contains(second.Body, ">Older</a>") || !strings.Contains(second.Body, ">Newest</a>") {
		t.Error("the last page offers an older one, or no way back to the newest")
	}
}

func TestRetryFailedMessage(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	failed, sent := testMessage("Your request #1 was approved"), testMessage("Your request #2 was denied")
	p.queueMessages(failed, sent)
	p.failMessage(failed.ID, "smtp: 550 mailbox unavailable")
	p.exec(`UPDATE messages SET status = 'sent', attempts = 1, sent_at = now() WHERE id = $1`, sent.ID)

	page := sam.get("/staff/notifications?status=failed")
	if !strings.Contains(page.Body, "smtp: 550 mailbox unavailable") || !strings.Contains(page.Body, "Retry now") {
		t.Fatalf("the failed message shows no last error or no retry:\n%s", page.Body)
	}
	if customer := alice.post(fmt.Sprintf("/staff/notifications/%d/retry", failed.ID), url.Values{"csrf": {csrfToken(t, alice.get("/dashboard").Body)}}); customer.StatusCode != http.StatusForbidden {
		t.Errorf("a customer retrying: %d, want 403", customer.StatusCode)
	}
	if got := p.messageStatus(failed.ID); got != "failed" {
		t.Fatalf("after a customer's retry the message is %s", got)
	}

	r := sam.submit("/staff/notifications?status=failed", fmt.Sprintf("/staff/notifications/%d/retry", failed.ID), url.Values{"status": {"failed"}})
	if r.StatusCode != http.StatusOK || r.Request.URL.RequestURI() != "/staff/notifications?status=failed" ||
		!strings.Contains(r.Body, fmt.Sprintf("Message #%d queued again.", failed.ID)) {
		t.Errorf("retry: %d at %s, want the failed tab with a confirmation\n%s", r.StatusCode, r.Request.URL, r.Body)
	}
	if got := p.messageStatus(failed.ID); got != "queued" {
		t.Errorf("the retried message is %s, want queued", got)
	}
	p.wantAudited(portal.ActionMessageRetried, 1)
	audit := sam.get("/staff/audit?action=message.retried")
	if link := fmt.Sprintf(`<a href="/staff/notifications?before=%d#message-%d">message #%d</a>`, failed.ID+1, failed.ID, failed.ID); !strings.Contains(audit.Body, link) {
		t.Errorf("the audit log does not link the retried message with %s", link)
	}

	r = sam.submit("/staff/notifications", fmt.Sprintf("/staff/notifications/%d/retry", sent.ID), nil)
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.Body, "only a failed message can be retried") {
		t.Errorf("retrying a sent message: %d, want 409 with the reason\n%s", r.StatusCode, r.Body)
	}
	if r := sam.submit("/staff/notifications", "/staff/notifications/999999/retry", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("retrying no message: %d, want 404", r.StatusCode)
	}
	if got := p.messageStatus(sent.ID); got != "sent" {
		t.Errorf("the sent message is %s after a refused retry", got)
	}
	p.wantAudited(portal.ActionMessageRetried, 1)
}

func TestStaffNavigationCounts(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	if r := sam.get("/staff/clusters"); !strings.Contains(r.Body, `<a href="/staff/requests">Queue (0)</a>`) {
		t.Errorf("the staff navigation shows no empty queue:\n%s", r.Body)
	}
	alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")

	for _, path := range []string{"/staff/clusters", "/staff/requests", "/staff/notifications", "/dashboard", "/requests/999999"} {
		r := sam.get(path)
		if !strings.Contains(r.Body, `<a href="/staff/requests">Queue (1)</a>`) || !strings.Contains(r.Body, `<a href="/staff/notifications">Notifications`) {
			t.Errorf("staff on %s (%d): the navigation lacks Queue (1) or Notifications", path, r.StatusCode)
		}
		if strings.Contains(r.Body, "failing</span>") {
			t.Errorf("staff on %s: a failing marker with nothing failing", path)
		}
	}
	for _, path := range []string{"/dashboard", "/requests/new", "/staff/requests"} {
		r := alice.get(path)
		if strings.Contains(r.Body, "Queue (") || strings.Contains(r.Body, "/staff/notifications") {
			t.Errorf("customer on %s: the page shows the staff navigation", path)
		}
	}

	m := testMessage("Your request #1 was approved")
	p.queueMessages(m)
	p.failMessage(m.ID, "smtp: connection refused")
	if r := sam.get("/dashboard"); !strings.Contains(r.Body, `<span class="nav-alert">1 failing</span>`) {
		t.Errorf("the staff navigation shows no failing marker:\n%s", r.Body)
	}
}

func TestQueueWarnsWhileMessagesFail(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{channels: workflow.Channels{Email: true, Webhook: true}})
	sam := p.signedIn("sam@2i2c.org")
	warning := "1 message failed to send"
	if r := sam.get("/staff/requests"); strings.Contains(r.Body, warning) || strings.Contains(r.Body, "recorded but not sent") {
		t.Errorf("the queue warns with nothing failing and both channels configured:\n%s", r.Body)
	}
	m := testMessage("Your request #1 was approved")
	p.queueMessages(m)
	p.failMessage(m.ID, "smtp: connection refused")
	r := sam.get("/staff/requests")
	if !strings.Contains(r.Body, warning) || !strings.Contains(r.Body, `<a href="/staff/notifications?status=failed">see Notifications</a>`) {
		t.Errorf("the queue does not warn of the failed message:\n%s", r.Body)
	}
}

func TestNotificationsSayWhichChannelIsMissing(t *testing.T) {
	t.Parallel()
	noneBox := "Messages are recorded but not sent"
	for _, tt := range []struct {
		name     string
		channels workflow.Channels
		want     []string
		not      []string
	}{
		{"none", workflow.Channels{},
			[]string{noneBox, "PORTAL_SMTP_URL", "smtp://user:pass@host:587", "smtps://user:pass@host:465", "PORTAL_MAIL_FROM",
				"PORTAL_STAFF_NOTIFY_EMAILS", "PORTAL_STAFF_WEBHOOK_URL", "Slack-compatible"}, nil},
		{"email only", workflow.Channels{Email: true},
			[]string{"staff webhook is not configured", "PORTAL_STAFF_WEBHOOK_URL"}, []string{noneBox, "PORTAL_SMTP_URL"}},
		{"webhook only", workflow.Channels{Webhook: true},
			[]string{"Email is not configured", "PORTAL_SMTP_URL", "PORTAL_MAIL_FROM"}, []string{noneBox, "PORTAL_STAFF_WEBHOOK_URL"}},
		{"both", workflow.Channels{Email: true, Webhook: true},
			nil, []string{noneBox, "PORTAL_SMTP_URL", "PORTAL_STAFF_WEBHOOK_URL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPortal(t, portalOptions{channels: tt.channels})
			sam := p.signedIn("sam@2i2c.org")
			r := sam.get("/staff/notifications")
			for _, s := range tt.want {
				if !strings.Contains(r.Body, s) {
					t.Errorf("the notifications page lacks %q", s)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(r.Body, s) {
					t.Errorf("the notifications page says %q", s)
				}
			}
			note := `<a href="/staff/notifications">See Notifications</a> for how to set them up`
			q := sam.get("/staff/requests")
			if shown := strings.Contains(q.Body, note); shown != (tt.channels == workflow.Channels{}) {
				t.Errorf("the queue's note on channels: shown %t with channels %+v", shown, tt.channels)
			}
		})
	}
}

// capturedMail is development mail holding messages.
type capturedMail []*portal.Message

func (c capturedMail) Messages() []*portal.Message { return c }

func TestDevMail(t *testing.T) {
	t.Parallel()
	t.Run("not in production", func(t *testing.T) {
		t.Parallel()
		b := newPortal(t, portalOptions{}).browser()
		for _, path := range []string{"/dev/mail", "/dev/mail/1/html"} {
			if r := b.get(path); r.StatusCode != http.StatusNotFound {
				t.Errorf("%s without development mail: %d, want 404", path, r.StatusCode)
			}
		}
	})
	t.Run("in development", func(t *testing.T) {
		t.Parallel()
		now := time.Now()
		mail := capturedMail{
			{ID: 7, CreatedAt: now.Add(-time.Hour), Event: portal.ActionRequestCreated, Audience: portal.AudienceStaff,
				Channel: portal.ChannelWebhook, Subject: "New request #3 on awi-ciroh", Text: "Alice asks for access."},
			{ID: 8, CreatedAt: now, Event: portal.ActionRequestApproved, Audience: portal.AudienceCustomer,
				Channel: portal.ChannelEmail, Recipient: "alice@example.org", Subject: "Your request #3 was approved",
				Text: "Download your credential.", HTML: `<p style="color: green">Approved.</p><script>alert(1)</script>`},
		}
		p := newPortal(t, portalOptions{devMail: mail})
		b := p.browser() // no sign-in needed
		r := b.get("/dev/mail")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("/dev/mail: %d\n%s", r.StatusCode, r.Body)
		}
		for _, want := range []string{"Your request #3 was approved", "New request #3 on awi-ciroh", "alice@example.org",
			"staff webhook", "Download your credential.", `href="/dev/mail/8/html"`, `<a href="/dev/mail">Mail (2)</a>`} {
			if !strings.Contains(r.Body, want) {
				t.Errorf("/dev/mail lacks %s", want)
			}
		}
		if strings.Index(r.Body, "Your request #3 was approved") > strings.Index(r.Body, "New request #3 on awi-ciroh") {
			t.Error("/dev/mail does not list the newest message first")
		}
		if strings.Contains(r.Body, "<script>alert(1)") || strings.Contains(r.Body, `href="/dev/mail/7/html"`) {
			t.Error("/dev/mail inlines a message's HTML, or links an HTML part a webhook post has not")
		}

		html := b.get("/dev/mail/8/html")
		csp := html.Header.Get("Content-Security-Policy")
		if html.StatusCode != http.StatusOK || html.Body != mail[1].HTML || !strings.HasPrefix(csp, "default-src 'none'; style-src 'unsafe-inline'; img-src data:") {
			t.Errorf("/dev/mail/8/html: %d, CSP %q\n%s", html.StatusCode, csp, html.Body)
		}
		for _, path := range []string{"/dev/mail/7/html", "/dev/mail/9/html", "/dev/mail/x/html"} {
			if r := b.get(path); r.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", path, r.StatusCode)
			}
		}
		if home := b.get("/"); !strings.Contains(home.Body, `<a href="/dev/mail">Mail (2)</a>`) {
			t.Error("the development banner does not link the mail")
		}
	})
}

func TestMetricsServeOtherCollectors(t *testing.T) {
	t.Parallel()
	delivered := prometheus.NewCounter(prometheus.CounterOpts{Name: "portal_outbox_test_delivered_total", Help: "Test."})
	delivered.Add(3)
	p := newPortal(t, portalOptions{collectors: []prometheus.Collector{delivered}})
	r := p.browser().get("/metrics")
	if !strings.Contains(r.Body, "portal_outbox_test_delivered_total 3") || !strings.Contains(r.Body, "portal_http_requests_total") {
		t.Errorf("/metrics lacks the configured collector or the server's own:\n%s", r.Body)
	}
}
