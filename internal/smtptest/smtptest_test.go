package smtptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/wneessen/go-mail"
)

// send sends msg to srv with go-mail, as the portal's Mailer does, with the
// extra options given (credentials, TLS).
func send(srv *Server, msg *mail.Msg, opts ...mail.Option) error {
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	opts = append([]mail.Option{
		mail.WithPort(p), mail.WithTimeout(10 * time.Second), mail.WithTLSPolicy(mail.NoTLS),
		mail.WithTLSConfig(&tls.Config{ServerName: host, RootCAs: srv.Roots, MinVersion: tls.VersionTLS12}),
	}, opts...)
	c, err := mail.NewClient(host, opts...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(context.Background(), msg)
}

// newMsg returns a message from the portal to ada with subject and the
// header X-Test-ID: id, and no body yet.
func newMsg(t *testing.T, subject, id string, opts ...mail.MsgOption) *mail.Msg {
	t.Helper()
	msg := mail.NewMsg(opts...)
	if err := msg.From("2i2c Portal <portal@example.org>"); err != nil {
		t.Fatal(err)
	}
	if err := msg.To("ada@example.org", "grace@example.org"); err != nil {
		t.Fatal(err)
	}
	msg.Subject(subject)
	msg.SetGenHeader("X-Test-ID", id)
	return msg
}

func TestMultipartBodies(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	const subject = "Your credential for “pangeo” is ready"
	// The link is longer than a quoted-printable line, and its "=" is
	// encoded: in the raw message it is cut by a soft line break.
	link := "https://portal.example.org/credentials/7/download?token=" + strings.Repeat("s3cr3t", 12)
	text := "Hello Ada,\n\nDownload it at " + link + "\n\nThe 2i2c team — ¡olé!\n"
	html := `<p>Download it <a href="` + link + `">here</a>. Café ☕</p>`

	msg := newMsg(t, subject, "7")
	msg.SetBodyString(mail.TypeTextPlain, text) // quoted-printable, go-mail's default
	msg.AddAlternativeString(mail.TypeTextHTML, html, mail.WithPartEncoding(mail.EncodingB64))
	if err := send(srv, msg); err != nil {
		t.Fatalf("send: %v", err)
	}

	got := srv.WaitFor(t, 1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("WaitFor(1) = %d messages; want 1", len(got))
	}
	m := got[0]
	if m.From != "portal@example.org" || len(m.To) != 2 || m.To[0] != "ada@example.org" || m.To[1] != "grace@example.org" {
		t.Errorf("envelope from %q to %q; want portal@example.org to ada@ and grace@example.org", m.From, m.To)
	}
	raw := string(m.Data)
	for _, hidden := range []string{link, subject, "Café"} {
		if strings.Contains(raw, hidden) {
			t.Fatalf("the raw message holds %q as is: the test would not show decoding\n%s", hidden, raw)
		}
	}
	if !strings.Contains(raw, "quoted-printable") || !strings.Contains(raw, "base64") {
		t.Fatalf("the raw message is not in quoted-printable and base64:\n%s", raw)
	}

	if s := m.Header(t, "Subject"); s != subject {
		t.Errorf("Subject = %q; want %q", s, subject)
	}
	if id := m.Header(t, "X-Test-ID"); id != "7" {
		t.Errorf("X-Test-ID = %q; want 7", id)
	}
	if v := m.Header(t, "X-Not-There"); v != "" {
		t.Errorf("X-Not-There = %q; want none", v)
	}
	gotText, gotHTML := m.Bodies(t)
	if strings.TrimRight(gotText, "\n") != strings.TrimRight(text, "\n") {
		t.Errorf("text body = %q; want %q", gotText, text)
	}
	if gotHTML != html {
		t.Errorf("HTML body = %q; want %q", gotHTML, html)
	}
	if !strings.Contains(gotText, link) || !strings.Contains(gotHTML, link) {
		t.Errorf("a body lacks the link %s", link)
	}
}

func TestSinglePartBody(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	text := "Line one, in base64.\nLine two: ünïcödé.\n"
	msg := newMsg(t, "plain", "1", mail.WithEncoding(mail.EncodingB64))
	msg.SetBodyString(mail.TypeTextPlain, text)
	if err := send(srv, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	m := srv.WaitFor(t, 1, 5*time.Second)[0]
	if !bytes.Contains(m.Data, []byte("Content-Transfer-Encoding: base64\r\n")) {
		t.Fatalf("the message is not in base64, with CRLF line ends:\n%q", m.Data)
	}
	gotText, gotHTML := m.Bodies(t)
	if strings.TrimRight(gotText, "\n") != strings.TrimRight(text, "\n") || gotHTML != "" {
		t.Errorf("Bodies = %q, %q; want %q and no HTML", gotText, gotHTML, text)
	}
}

func TestBodiesByHand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		text, html string
		wantFatal  string // a part of the failure; "" for none
	}{
		{name: "no Content-Type is US-ASCII text", data: "Subject: hi\r\n\r\nplain =3D as is\r\n",
			text: "plain =3D as is\n"},
		{name: "mixed with an attachment", data: "Content-Type: multipart/mixed; boundary=OUT\r\n\r\n" +
			"--OUT\r\nContent-Type: multipart/alternative; boundary=IN\r\n\r\n" +
			"--IN\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			"a long=\r\n line =E2=80=94 joined\r\n" +
			"--IN\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"PHA+aGk8L3A+\r\n--IN--\r\n" +
			"--OUT\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n" +
			"not a body\r\n--OUT--\r\n",
			text: "a long line — joined", html: "<p>hi</p>"},
		{name: "two text bodies", data: "Content-Type: multipart/mixed; boundary=B\r\n\r\n" +
			"--B\r\nContent-Type: text/plain\r\n\r\none\r\n--B\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--B--\r\n",
			wantFatal: "two text/plain bodies"},
		{name: "another charset", data: "Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n",
			wantFatal: "charset iso-8859-1"},
		{name: "an unknown encoding", data: "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n",
			wantFatal: "x-uuencode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &Message{From: "a@example.org", Data: []byte(tt.data)}
			var text, html string
			failure := fatal(t, func(tb testing.TB) { text, html = m.Bodies(tb) })
			if tt.wantFatal != "" {
				if !strings.Contains(failure, tt.wantFatal) {
					t.Errorf("Bodies failed with %q; want a failure about %q", failure, tt.wantFatal)
				}
				return
			}
			if failure != "" {
				t.Fatalf("Bodies failed: %s", failure)
			}
			if text != tt.text || html != tt.html {
				t.Errorf("Bodies = %q, %q; want %q, %q", text, html, tt.text, tt.html)
			}
		})
	}
}

func TestAuthAndTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		client  []mail.Option
		scheme  string
		wantErr bool
		auths   int // AUTH commands the server should see
	}{
		{name: "AUTH in the clear", opts: Options{User: "portal", Password: "pw"}, scheme: "smtp", auths: 1,
			client: []mail.Option{mail.WithSMTPAuth(mail.SMTPAuthPlainNoEnc), mail.WithUsername("portal"), mail.WithPassword("pw")}},
		{name: "AUTH after STARTTLS", opts: Options{User: "portal", Password: "pw", TLS: StartTLS}, scheme: "smtp", auths: 1,
			client: []mail.Option{mail.WithTLSPolicy(mail.TLSMandatory), mail.WithSMTPAuth(mail.SMTPAuthPlain),
				mail.WithUsername("portal"), mail.WithPassword("pw")}},
		{name: "implicit TLS", opts: Options{User: "portal", Password: "pw", TLS: ImplicitTLS}, scheme: "smtps", auths: 1,
			client: []mail.Option{mail.WithSSL(), mail.WithSMTPAuth(mail.SMTPAuthPlain),
				mail.WithUsername("portal"), mail.WithPassword("pw")}},
		{name: "wrong password", opts: Options{User: "portal", Password: "pw"}, scheme: "smtp", wantErr: true, auths: 1,
			client: []mail.Option{mail.WithSMTPAuth(mail.SMTPAuthPlainNoEnc), mail.WithUsername("portal"), mail.WithPassword("nope")}},
		{name: "no AUTH where it is required", opts: Options{User: "portal", Password: "pw"}, scheme: "smtp", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := Start(t, tt.opts)
			if u := srv.URL("portal:pw"); u != tt.scheme+"://portal:pw@"+srv.Addr {
				t.Errorf("URL = %q; want %s://portal:pw@%s", u, tt.scheme, srv.Addr)
			}
			if (srv.Roots != nil) != (tt.opts.TLS != Plain) {
				t.Errorf("Roots = %v with TLS %q", srv.Roots, tt.opts.TLS)
			}
			msg := newMsg(t, "hello", "1")
			msg.SetBodyString(mail.TypeTextPlain, "hello\n")
			err := send(srv, msg, tt.client...)
			if n := srv.Auths(); n != tt.auths {
				t.Errorf("Auths = %d; want %d", n, tt.auths)
			}
			if tt.wantErr {
				if err == nil {
					t.Fatal("send succeeded; want an error")
				}
				t.Log(err)
				if n := len(srv.Received()); n != 0 {
					t.Errorf("the server kept %d messages; want none", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			if n := len(srv.Received()); n != 1 {
				t.Errorf("the server kept %d messages; want 1", n)
			}
		})
	}
}

func TestOnData(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	srv := Start(t, Options{OnData: func(m *Message) error {
		mu.Lock()
		seen = append(seen, m.From)
		mu.Unlock()
		if m.From == "refused@example.org" {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		<-release
		return nil
	}})

	refused := newMsg(t, "refused", "0")
	if err := refused.EnvelopeFrom("refused@example.org"); err != nil {
		t.Fatal(err)
	}
	refused.SetBodyString(mail.TypeTextPlain, "no\n")
	if err := send(srv, refused); err == nil || !strings.Contains(err.Error(), "try later") {
		t.Errorf("send of a refused message = %v; want the server's answer, try later", err)
	}
	if n := len(srv.Received()); n != 0 {
		t.Errorf("the server kept %d messages after refusing one; want none", n)
	}

	sent := make(chan error, 2)
	for range 2 {
		msg := newMsg(t, "held", "0")
		msg.SetBodyString(mail.TypeTextPlain, "held\n")
		go func() { sent <- send(srv, msg) }()
	}
	select {
	case err := <-sent:
		t.Fatalf("send returned while OnData held the message: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if n := len(srv.Received()); n != 0 {
		t.Errorf("the server kept %d messages before OnData returned; want none", n)
	}
	close(release)
	got := srv.WaitFor(t, 2, 10*time.Second)
	if len(got) != 2 {
		t.Errorf("WaitFor(2) = %d messages; want 2", len(got))
	}
	for range 2 {
		if err := <-sent; err != nil {
			t.Errorf("send: %v", err)
		}
	}
	if c := srv.Count(t, "X-Test-ID"); len(c) != 1 || c["0"] != 2 {
		t.Errorf(`Count(X-Test-ID) = %v; want map[0:2]`, c)
	}
	if c := srv.Count(t, "X-Not-There"); len(c) != 1 || c[""] != 2 {
		t.Errorf(`Count(X-Not-There) = %v; want map[:2]`, c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Errorf("OnData ran for %d messages; want 3", len(seen))
	}
}

func TestReceivedCopies(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	msg := newMsg(t, "hello", "1")
	msg.SetBodyString(mail.TypeTextPlain, "hello\n")
	if err := send(srv, msg); err != nil {
		t.Fatal(err)
	}
	first := srv.Received()[0]
	first.To[0], first.Data[0] = "mallory@example.org", 'X'
	if again := srv.Received()[0]; again.To[0] != "ada@example.org" || again.Data[0] == 'X' {
		t.Errorf("changing what Received returned changed the server's message: to %q, data %q…", again.To, again.Data[:10])
	}
}

func TestWaitForTimesOut(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	msg := newMsg(t, "hello", "1")
	msg.SetBodyString(mail.TypeTextPlain, "hello\n")
	if err := send(srv, msg); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	failure := fatal(t, func(tb testing.TB) { srv.WaitFor(tb, 3, 200*time.Millisecond) })
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("WaitFor gave up after %s; want the whole timeout", took)
	}
	if !strings.Contains(failure, "1 messages arrived") || !strings.Contains(failure, "want at least 3") {
		t.Errorf("WaitFor failed with %q; want it to say 1 arrived of at least 3", failure)
	}
}

func TestStartRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{{TLS: "ssl"}, {Password: "pw"}} {
		if failure := fatal(t, func(tb testing.TB) { Start(tb, opts) }); failure == "" {
			t.Errorf("Start(%+v) did not fail the test", opts)
		}
	}
}

// fatal runs f with a testing.TB whose Fatal and Fatalf end f and record the
// message instead of failing t, and returns that message: "" when f did not
// call them.
func fatal(t *testing.T, f func(testing.TB)) string {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

// recorder is a testing.TB that records a fatal failure instead of failing
// the test, for checking what the helpers say when they fail.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
