package workflow_test

import (
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

var portalURL = &url.URL{Scheme: "https", Host: "credentials.example.org"}

// everyChannel tells staff by mail at two addresses and by the webhook,
// and customers by mail.
var everyChannel = workflow.NotifyOptions{
	BaseURL:     portalURL,
	Channels:    workflow.Channels{Email: true, Webhook: true},
	StaffEmails: []string{"support@2i2c.org", "oncall@2i2c.org"},
}

// outbox is every message written since the last call, oldest first.
type outbox struct {
	st   *store.Store
	seen int64
}

func (o *outbox) since(t *testing.T) []*portal.Message {
	t.Helper()
	ms, err := o.st.Messages(t.Context(), store.MessageFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*portal.Message
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].ID > o.seen {
			out = append(out, ms[i])
			o.seen = ms[i].ID
		}
	}
	return out
}

// recipients is who the messages go to, as "channel:recipient".
func recipients(ms []*portal.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Channel)+":"+m.Recipient)
	}
	return out
}

func wantTold(t *testing.T, ms []*portal.Message, event portal.Action, to []string, link string, says ...string) {
	t.Helper()
	if got := strings.Join(recipients(ms), " "); got != strings.Join(to, " ") {
		t.Fatalf("%s told %q, want %q", event, got, strings.Join(to, " "))
	}
	for _, m := range ms {
		if m.Event != event || m.Link != link || !strings.Contains(m.Text, link) {
			t.Errorf("%s message %q: event %s, link %q; want %s linking %s", m.Channel, m.Subject, m.Event, m.Link, event, link)
		}
		for _, s := range says {
			if !strings.Contains(m.Text, s) {
				t.Errorf("%s message %q does not say %q:\n%s", m.Channel, m.Subject, s, m.Text)
			}
		}
	}
}

// TestWhoIsTold follows a request and a credential through their life and
// checks who hears of each step, with what, and with the link to the page.
func TestWhoIsTold(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, workflow.Options{Notify: everyChannel})
	f := w.fixture(t)
	box := &outbox{st: w.st}
	ctx := t.Context()
	staffTo := []string{"email:support@2i2c.org", "email:oncall@2i2c.org", "webhook:"}
	aliceTo := []string{"email:" + f.customerA.Email}

	r := f.request(t, f.customerA)
	queue := "https://credentials.example.org/staff/requests#request-" + itoa(r.ID)
	wantTold(t, box.since(t), portal.ActionRequestCreated, staffTo, queue, "Dashboards for the research team.")

	ap, err := f.svc.Approve(ctx, as(f.staff), r.ID, workflow.ApproveInput{Note: "Welcome aboard."})
	if err != nil {
		t.Fatal(err)
	}
	cred := ap.Credential
	wantTold(t, box.since(t), portal.ActionRequestApproved, aliceTo,
		"https://credentials.example.org/requests/"+itoa(r.ID), "Welcome aboard.", "age --decrypt -i key.txt -o credentials.txt credentials.txt.age")

	denied := f.request(t, f.customerB)
	box.since(t)
	if _, err := f.svc.Deny(ctx, as(f.staff), denied.ID, "Ask your hub admin first."); err != nil {
		t.Fatal(err)
	}
	wantTold(t, box.since(t), portal.ActionRequestDenied, []string{"email:" + f.customerB.Email},
		"https://credentials.example.org/requests/"+itoa(denied.ID), "Ask your hub admin first.")

	// The owner revoking their own credential is told nothing: they did it.
	own := f.credential(t, f.customerA)
	box.since(t)
	if _, err := f.svc.Revoke(ctx, as(f.customerA), own.ID, "No longer needed."); err != nil {
		t.Fatal(err)
	}
	if ms := box.since(t); len(ms) != 0 {
		t.Errorf("the owner's own revocation told %v; want no one", recipients(ms))
	}
	if _, err := f.svc.Revoke(ctx, as(f.staff), cred.ID, "The project ended."); err != nil {
		t.Fatal(err)
	}
	credPage := "https://credentials.example.org/credentials/" + itoa(cred.ID)
	wantTold(t, box.since(t), portal.ActionCredentialRevoked, aliceTo, credPage, "The project ended.")

	leaked := f.credential(t, f.customerA)
	box.since(t)
	if _, err := f.svc.ReportCompromised(ctx, as(f.customerA), leaked.ID, "pasted it in a public notebook"); err != nil {
		t.Fatal(err)
	}
	wantTold(t, box.since(t), portal.ActionCredentialCompromised, staffTo,
		"https://credentials.example.org/credentials/"+itoa(leaked.ID), "pasted it in a public notebook")
}

func TestReminderTellsTheOwner(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	w := newWorldWith(t, workflow.Options{Notify: everyChannel, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	f := w.fixture(t)
	cred := f.credential(t, f.customerA) // 90 days
	box := &outbox{st: w.st}
	box.since(t)
	now.Add(int64(77 * 24 * time.Hour)) // 13 days left
	if n, err := f.svc.RecordDueReminders(t.Context()); err != nil || n != 1 {
		t.Fatalf("RecordDueReminders: %d, %v; want 1", n, err)
	}
	wantTold(t, box.since(t), portal.ActionCredentialReminder, []string{"email:" + f.customerA.Email},
		"https://credentials.example.org/credentials/"+itoa(cred.ID), "expires on", "Renew")
}

// TestUnansweredRequestsExpire: after the request lifetime, a pending
// request expires as the system's act, its requester is told, and may ask
// again.
func TestUnansweredRequestsExpire(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	opts := everyChannel
	opts.RequestTTL = 48 * time.Hour
	w := newWorldWith(t, workflow.Options{Notify: opts, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	f := w.fixture(t)
	r := f.request(t, f.customerA)
	box := &outbox{st: w.st}
	box.since(t)

	now.Add(int64(47 * time.Hour))
	if n, err := f.svc.ExpireRequests(t.Context()); err != nil || n != 0 {
		t.Fatalf("at 47 hours: %d expired, %v; want none", n, err)
	}
	now.Add(int64(2 * time.Hour))
	if n, err := f.svc.ExpireRequests(t.Context()); err != nil || n != 1 {
		t.Fatalf("at 49 hours: %d expired, %v; want 1", n, err)
	}
	if got := f.requestStatus(t, r.ID); got != portal.StatusExpired {
		t.Errorf("request is %s, want expired", got)
	}
	events := f.auditEvents(t, portal.SubjectRequest, r.ID, portal.ActionRequestExpired)
	if len(events) != 1 || events[0].Actor != portal.ActorSystem {
		t.Errorf("expiry audit events %v; want one by the system", events)
	}
	wantTold(t, box.since(t), portal.ActionRequestExpired, []string{"email:" + f.customerA.Email},
		"https://credentials.example.org/requests/"+itoa(r.ID), "make a new request", "/requests/new?cluster="+f.open.Name)
	// Expired, the request no longer blocks a new one.
	f.request(t, f.customerA)
}

// TestMessagesWithoutAChannel: with nothing configured, or no verified
// address, a message is still recorded, marked as not sent and why.
func TestMessagesWithoutAChannel(t *testing.T) {
	t.Parallel()
	w := newWorld(t) // no channel at all
	f := w.fixture(t)
	box := &outbox{st: w.st}
	r := f.request(t, f.customerA)
	ms := box.since(t)
	if len(ms) != 1 || ms[0].Channel != portal.ChannelNone || ms[0].Status != portal.MessageUnsent || ms[0].LastError != portal.NotSent {
		t.Fatalf("messages %+v; want one unsent, %q", ms, portal.NotSent)
	}

	w2 := newWorldWith(t, workflow.Options{Notify: everyChannel})
	f2 := w2.fixture(t)
	f2.customerA.EmailVerified = false
	if err := w2.st.UpsertUser(t.Context(), f2.customerA); err != nil {
		t.Fatal(err)
	}
	r = f2.request(t, f2.customerA)
	box2 := &outbox{st: w2.st}
	box2.since(t)
	if _, err := f2.svc.Deny(t.Context(), as(f2.staff), r.ID, "Sign in with your work address."); err != nil {
		t.Fatal(err)
	}
	ms = box2.since(t)
	if len(ms) != 1 || ms[0].Status != portal.MessageUnsent || !strings.Contains(ms[0].LastError, "no verified email") {
		t.Fatalf("messages to an unverified address %+v; want one unsent for want of a verified address", ms)
	}
}

// TestNoApprovalWithoutItsMessages: when the outbox cannot be written, the
// approval is rolled back: no decision, no credential, no audit event.
func TestNoApprovalWithoutItsMessages(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, workflow.Options{Notify: everyChannel})
	f := w.fixture(t)
	r := f.request(t, f.customerA)
	_, err := w.st.Pool().Exec(t.Context(), `
		CREATE FUNCTION refuse_messages() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'outbox is full'; END $$;
		CREATE TRIGGER refuse_messages BEFORE INSERT ON messages FOR EACH STATEMENT EXECUTE FUNCTION refuse_messages();`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{}); err == nil || !strings.Contains(err.Error(), "outbox is full") {
		t.Fatalf("Approve with a broken outbox: %v; want the outbox's error", err)
	}
	if got := f.requestStatus(t, r.ID); got != portal.StatusPending {
		t.Errorf("request is %s, want pending still", got)
	}
	if events := f.auditEvents(t, portal.SubjectRequest, r.ID, portal.ActionRequestApproved); len(events) != 0 {
		t.Errorf("approval audited %d times without its messages", len(events))
	}
	var creds int
	if err := w.st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM credentials WHERE request_id = $1`, r.ID).Scan(&creds); err != nil || creds != 0 {
		t.Errorf("%d credentials (%v); want none", creds, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
