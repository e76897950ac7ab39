package message

import (
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// facts holds every fact, with text a hostile customer could have typed.
func facts(event portal.Action) Facts {
	return Facts{
		Event: event, Link: "https://portal.example/requests/7", NewRequestLink: "https://portal.example/requests/new?cluster=earthscope",
		Cluster: "earthscope", RequestID: 7, CredentialID: 9, Renews: 3, Customer: "Alice <alice@example.org>",
		Actor: "sam@2i2c.org", Justification: "Dashboards for <script>alert(1)</script>\nand more & more",
		KeyType: "age X25519", Note: "Use it <b>well</b>", Reason: "laptop stolen <img src=x>", Username: "earthscope-alice-1234",
		ExpiresAt: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC), DaysLeft: 14,
		Since: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), Rule: "verified @earthscope.org <u>address</u>",
		Approvals: 1, ApprovalsRequired: 2,
	}
}

func TestEveryEventHasAMessage(t *testing.T) {
	events := []struct {
		event   portal.Action
		webhook bool   // staff hear of it in chat too
		says    string // the fact the plain text must carry
	}{
		{portal.ActionRequestCreated, true, "> Dashboards for <script>"},
		{portal.ActionRequestApproved, false, "age --decrypt -i key.txt -o credentials.txt credentials.txt.age"},
		{portal.ActionRequestDenied, false, "> Use it <b>well</b>"},
		{portal.ActionRequestExpired, false, "waited since 1 November 2026"},
		{portal.ActionRequestAutoApproved, true, "approved request #7 at once: verified @earthscope.org"},
		{portal.ActionApprovalRecorded, true, "it has 1."},
		{portal.ActionCredentialRevoked, false, "> laptop stolen"},
		{portal.ActionCredentialCompromised, true, "earthscope-alice-1234"},
		{portal.ActionCredentialReminder, false, "in 14 days"},
	}
	for _, tt := range events {
		t.Run(string(tt.event), func(t *testing.T) {
			c, err := Compose(facts(tt.event))
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject == "" || strings.ContainsAny(c.Subject, "\r\n") {
				t.Errorf("subject %q: want one non-empty line", c.Subject)
			}
			if !strings.Contains(c.Text, tt.says) {
				t.Errorf("text lacks %q:\n%s", tt.says, c.Text)
			}
			// Every message links to the exact page, in both bodies.
			for part, body := range map[string]string{"text": c.Text, "html": c.HTML} {
				if !strings.Contains(body, "https://portal.example/requests/7") {
					t.Errorf("%s body has no link to the page:\n%s", part, body)
				}
			}
			// What a customer typed is text in the HTML, never markup.
			for _, tag := range []string{"<script>", "<b>", "<img", "<u>"} {
				if strings.Contains(c.HTML, tag) {
					t.Errorf("html holds %s unescaped", tag)
				}
			}
			if (c.Webhook != "") != tt.webhook {
				t.Errorf("webhook text %q; want one: %v", c.Webhook, tt.webhook)
			}
			if c.Webhook != "" {
				if !strings.Contains(c.Webhook, "<https://portal.example/requests/7|") {
					t.Errorf("webhook text has no link: %q", c.Webhook)
				}
				if strings.Contains(c.Webhook, "<script>") || strings.Contains(c.Webhook, "<alice@") {
					t.Errorf("webhook text holds unescaped < >: %q", c.Webhook)
				}
			}
		})
	}
}

func TestSubjectIsOneLine(t *testing.T) {
	f := facts(portal.ActionRequestCreated)
	f.Customer = "Mallory\r\nBcc: everyone@example.org"
	c, err := Compose(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(c.Subject, "\r\n") {
		t.Fatalf("subject %q spans lines", c.Subject)
	}
}

func TestUnknownEventIsRefused(t *testing.T) {
	if _, err := Compose(Facts{Event: portal.ActionSignedIn}); err == nil {
		t.Fatal("a message for a sign-in: want an error")
	}
}

// TestWebhookMentionsNotifyNoOne: text someone typed cannot notify a whole
// channel, in Slack's syntax or as Mattermost reads a bare mention, while
// an email address and a domain after an @ read as they were.
func TestWebhookMentionsNotifyNoOne(t *testing.T) {
	f := facts(portal.ActionRequestCreated)
	f.Justification = "<!channel> @here, (@Channel) @everyone\n@all: mail bob@all.example"
	c, err := Compose(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"<!channel>", " @here", "(@Channel)", " @everyone", " @all:"} {
		if strings.Contains(c.Webhook, m) {
			t.Errorf("webhook text holds %q: %q", m, c.Webhook)
		}
	}
	if !strings.Contains(c.Webhook, "@\u2060here") || !strings.Contains(c.Webhook, "bob@all.example") {
		t.Errorf("webhook text does not keep the words as typed: %q", c.Webhook)
	}
}
