package outbox

import (
	"bytes"
	"context"
	"mime"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/smtptest"
)

// newMailer returns a Mailer for rawURL, failing the test if it cannot.
func newMailer(t testing.TB, rawURL string) *Mailer {
	t.Helper()
	m, err := NewMailer(rawURL, "2i2c Portal <portal@example.org>")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMailerSend(t *testing.T) {
	t.Parallel()
	msg := &portal.Message{
		ID: 42, CreatedAt: time.Now(), Event: portal.ActionCredentialIssued, Audience: portal.AudienceCustomer,
		Channel: portal.ChannelEmail, Recipient: "ada@example.org",
		Subject: "Your credential for “pangeo” is ready",
		Text:    "Download it at https://portal.example.org/credentials/7\n",
		HTML:    `<p>Download it <a href="https://portal.example.org/credentials/7">here</a>.</p>`,
	}
	tests := []struct {
		name     string
		server   smtptest.Options
		userinfo string
		// remote treats the server as another machine's, as a server
		// named by a host other than the loopback is: STARTTLS required.
		remote  bool
		wantErr string // a part of the error; "" for none
	}{
		{name: "with AUTH, in the clear on the loopback", server: smtptest.Options{User: "portal", Password: "s3cret-pw"},
			userinfo: "portal:s3cret-pw"},
		{name: "without AUTH", userinfo: ""},
		{name: "STARTTLS required, AUTH after it", server: smtptest.Options{User: "portal", Password: "s3cret-pw", TLS: smtptest.StartTLS},
			userinfo: "portal:s3cret-pw", remote: true},
		{name: "STARTTLS offered on the loopback", server: smtptest.Options{User: "portal", Password: "s3cret-pw", TLS: smtptest.StartTLS},
			userinfo: "portal:s3cret-pw"},
		{name: "implicit TLS", server: smtptest.Options{User: "portal", Password: "s3cret-pw", TLS: smtptest.ImplicitTLS},
			userinfo: "portal:s3cret-pw"},
		{name: "wrong password", server: smtptest.Options{User: "portal", Password: "s3cret-pw"},
			userinfo: "portal:wr0ng-pw", wantErr: "SMTP AUTH failed"},
		{name: "STARTTLS required but not offered", server: smtptest.Options{User: "portal", Password: "s3cret-pw"},
			userinfo: "portal:s3cret-pw", remote: true, wantErr: "STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, tt.server)
			mr := newMailer(t, srv.URL(tt.userinfo))
			mr.roots = srv.Roots
			if tt.remote {
				mr.security = mandatoryTLS
			}
			err := mr.Send(context.Background(), msg)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Send succeeded; want an error about %q", tt.wantErr)
				}
				t.Log(err)
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not say %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "-pw") {
					t.Errorf("error %q holds the password", err)
				}
				if n := len(srv.Received()); n != 0 {
					t.Errorf("server received %d messages; want none", n)
				}
				if tt.remote && srv.Auths() > 0 {
					t.Error("the password was sent to another machine in the clear")
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.Received()
			if len(got) != 1 {
				t.Fatalf("server received %d messages; want 1", len(got))
			}
			checkMail(t, got[0], msg)
		})
	}
}

// checkMail checks that r is the email of m, as a mail reader would show it.
func checkMail(t *testing.T, r *smtptest.Message, m *portal.Message) {
	t.Helper()
	if r.From != "portal@example.org" || len(r.To) != 1 || r.To[0] != m.Recipient {
		t.Errorf("envelope from %q to %q; want portal@example.org to %q", r.From, r.To, m.Recipient)
	}
	parsed, err := netmail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		t.Fatalf("mail does not parse: %v", err)
	}
	h := parsed.Header
	if subject := r.Header(t, "Subject"); subject != m.Subject {
		t.Errorf("Subject = %q; want %q", subject, m.Subject)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != m.Recipient {
		t.Errorf("To = %q; want %q", h.Get("To"), m.Recipient)
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "2i2c Portal" {
		t.Errorf("From = %q; want 2i2c Portal <portal@example.org>", h.Get("From"))
	}
	for key, want := range map[string]string{"X-Portal-Message": "42", "Auto-Submitted": "auto-generated"} {
		if got := h.Get(key); got != want {
			t.Errorf("%s = %q; want %q", key, got, want)
		}
	}
	if !strings.HasSuffix(h.Get("Message-ID"), "@example.org>") {
		t.Errorf("Message-ID = %q; want one of the sender's domain", h.Get("Message-ID"))
	}
	if mediaType, _, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q; want multipart/alternative", h.Get("Content-Type"))
	}
	text, html := r.Bodies(t)
	if got := strings.TrimRight(text, "\n"); got != strings.TrimRight(m.Text, "\n") {
		t.Errorf("text part = %q; want %q", text, m.Text)
	}
	if html != m.HTML {
		t.Errorf("HTML part = %q; want %q", html, m.HTML)
	}
}

func TestNewMailer(t *testing.T) {
	t.Parallel()
	const from = "portal@example.org"
	tests := []struct {
		name     string
		url      string
		from     string
		wantErr  string // a part of the error; "" for none
		security security
		host     string
		port     int
	}{
		{name: "smtp to the loopback: STARTTLS if offered", url: "smtp://u:pw-secret@127.0.0.1:2525",
			security: opportunisticTLS, host: "127.0.0.1", port: 2525},
		{name: "smtp to localhost, default port", url: "smtp://localhost",
			security: opportunisticTLS, host: "localhost", port: 587},
		{name: "smtp to another host: STARTTLS required", url: "smtp://u:pw-secret@smtp.example.org",
			security: mandatoryTLS, host: "smtp.example.org", port: 587},
		{name: "smtps, default port", url: "smtps://u:pw-secret@smtp.example.org",
			security: implicitTLS, host: "smtp.example.org", port: 465},
		{name: "smtps to the loopback stays TLS", url: "smtps://[::1]:1465",
			security: implicitTLS, host: "::1", port: 1465},
		{name: "named sender", url: "smtp://smtp.example.org", from: "2i2c Portal <portal@example.org>",
			security: mandatoryTLS, host: "smtp.example.org", port: 587},

		{name: "unset", url: "", wantErr: "not set"},
		{name: "bad scheme", url: "https://u:pw-secret@smtp.example.org", wantErr: "smtps://"},
		{name: "no scheme", url: "u:pw-secret@smtp.example.org:587", wantErr: "scheme"},
		{name: "missing host", url: "smtp://u:pw-secret@:587", wantErr: "no host"},
		{name: "password not escaped", url: "smtp://u:pw/secret@smtp.example.org", wantErr: "percent-encoded"},
		{name: "bad port", url: "smtp://u:pw-secret@smtp.example.org:99999", wantErr: "port"},
		{name: "a path", url: "smtp://u:pw-secret@smtp.example.org/mail", wantErr: "after the host"},
		{name: "password without user", url: "smtp://:pw-secret@smtp.example.org", wantErr: "no user name"},
		{name: "bad from", url: "smtp://u:pw-secret@smtp.example.org", from: "the portal", wantErr: "not an address"},
		{name: "no from", url: "smtp://u:pw-secret@smtp.example.org", from: " ", wantErr: "from address is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := tt.from
			if f == "" {
				f = from
			}
			m, err := NewMailer(tt.url, f)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("NewMailer(%q) succeeded; want an error about %q", tt.url, tt.wantErr)
				}
				t.Log(err)
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not say %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q holds the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewMailer(%q): %v", tt.url, err)
			}
			if m.security != tt.security || m.host != tt.host || m.port != tt.port {
				t.Errorf("NewMailer(%q) = %s to %s:%d; want %s to %s:%d", tt.url,
					m.security, m.host, m.port, tt.security, tt.host, tt.port)
			}
		})
	}
}
