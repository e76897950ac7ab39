// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) in
// the test process, on the loopback, that keeps what it receives, for tests
// that send mail. A test reads the delivered messages back as a mail reader
// would show them: headers MIME-decoded, and the text and HTML bodies with
// their transfer encoding undone.
//
// Only tests import it, so no binary reaches its functions: `deadcode ./...`
// lists them as unreachable, and that is expected.
package smtptest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLS modes for Options.TLS.
const (
	// Plain is a server without TLS, which allows AUTH in the clear: its
	// traffic stays on the loopback.
	Plain = ""
	// StartTLS is a server that offers STARTTLS and allows AUTH only after
	// it.
	StartTLS = "starttls"
	// ImplicitTLS is a server that speaks TLS from the first byte (smtps).
	ImplicitTLS = "implicit"
)

// Options say how a Server behaves. The zero value is a server without TLS
// or AUTH that takes every message.
type Options struct {
	// User and Password, when User is set, are the only credentials AUTH
	// PLAIN accepts, and MAIL is refused until they are given.
	User, Password string
	// TLS is Plain (""), StartTLS ("starttls") or ImplicitTLS ("implicit").
	TLS string
	// OnData, when set, runs as each message arrives, before the server
	// answers the DATA command; it may block, or fail the message with an
	// error (an *smtp.SMTPError to choose the reply code), and a failed
	// message is not kept. It runs on the server's goroutines, so it must
	// not call t.Fatal.
	OnData func(*Message) error
}

// Server is an SMTP server on the loopback, closed when the test that
// started it ends. It is safe for concurrent use.
type Server struct {
	// Addr is the server's host:port, on 127.0.0.1.
	Addr string
	// Roots trust the server's certificate, for a server with TLS; nil
	// without.
	Roots *x509.CertPool

	opts Options

	mu      sync.Mutex
	got     []*Message
	auths   int           // AUTH commands, in the clear or not
	arrived chan struct{} // closed, and replaced, as each message is kept
}

// Message is one message as the server got it.
type Message struct {
	// From is the envelope sender (MAIL FROM).
	From string
	// To are the envelope recipients (RCPT TO), in the order given.
	To []string
	// Data is the message as sent, headers and body, with CRLF line ends.
	Data []byte
}

// Start starts a server on the loopback, closed when the test ends. It fails
// the test when opts are not valid or the server cannot listen.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.User == "" && opts.Password != "" {
		t.Fatal("smtptest: Options.Password is set without a User")
	}
	s := &Server{opts: opts, arrived: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s, msg: &Message{}}, nil
	}))
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	var conf *tls.Config
	switch opts.TLS {
	case Plain:
		srv.AllowInsecureAuth = true // AUTH without TLS: the loopback only
	case StartTLS, ImplicitTLS:
		conf, s.Roots = certificate(t)
	default:
		t.Fatalf("smtptest: Options.TLS %q: want %q, %q or %q", opts.TLS, Plain, StartTLS, ImplicitTLS)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	switch opts.TLS {
	case StartTLS:
		srv.TLSConfig = conf
	case ImplicitTLS:
		l = tls.NewListener(l, conf)
	}
	s.Addr = l.Addr().String()
	go srv.Serve(l) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return s
}

// certificate returns a TLS configuration with a certificate for 127.0.0.1,
// and the roots that trust it: httptest's.
func certificate(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	defer hs.Close()
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	return &tls.Config{Certificates: hs.TLS.Certificates, MinVersion: tls.VersionTLS12}, roots
}

// URL returns the server's SMTP URL, smtp://userinfo@addr, or smtps://… for
// a server with implicit TLS. userinfo is "user:password" as it goes in a
// URL, percent-encoded where need be; "" leaves it out.
func (s *Server) URL(userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	scheme := "smtp://"
	if s.opts.TLS == ImplicitTLS {
		scheme = "smtps://"
	}
	return scheme + userinfo + s.Addr
}

// Received returns copies of the messages kept so far, in the order they
// arrived.
func (s *Server) Received() []*Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies()
}

// copies returns copies of the messages kept; s.mu is held.
func (s *Server) copies() []*Message {
	out := make([]*Message, len(s.got))
	for i, m := range s.got {
		out[i] = &Message{From: m.From, To: slices.Clone(m.To), Data: bytes.Clone(m.Data)}
	}
	return out
}

// WaitFor waits until at least n messages have arrived and returns them, as
// Received does. After timeout it fails the test, saying how many came. Call
// it from the test's goroutine.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []*Message {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.got) >= n {
			defer s.mu.Unlock()
			return s.copies()
		}
		arrived, have := s.arrived, len(s.got)
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-timer.C:
			t.Fatalf("smtptest: %d messages arrived in %s; want at least %d", have, timeout, n)
		}
	}
}

// Count returns how many of the messages kept so far carry each value of
// header, decoded as Message.Header does ("" for those without it): with
// X-Portal-Message, how many times each outbox message was delivered.
func (s *Server) Count(t testing.TB, header string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, m := range s.Received() {
		n[m.Header(t, header)]++
	}
	return n
}

// Auths returns how many AUTH commands the server was given, in the clear or
// over TLS, with the right credentials or not.
func (s *Server) Auths() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

// keep adds m to the messages kept and wakes WaitFor.
func (s *Server) keep(m *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// Header returns the message's first header key, with any MIME encoded words
// (RFC 2047, as in a non-ASCII Subject) decoded; "" when there is none. It
// fails the test when the message or the header does not parse.
func (m *Message) Header(t testing.TB, key string) string {
	t.Helper()
	raw := m.parse(t).Header.Get(key)
	v, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil {
		t.Fatalf("smtptest: header %s %q does not decode: %v", key, raw, err)
	}
	return v
}

// Bodies returns the message's text/plain and text/html bodies as a reader
// sees them: their Content-Transfer-Encoding (quoted-printable, base64)
// undone, soft line breaks and all, and CRLF line ends turned into "\n". The
// message may be a single part or multipart (multipart/alternative, within
// multipart/mixed or not); attachments are passed over, and a body it does
// not have is "". It fails the test when the message does not parse, holds
// two bodies of one type, or uses an encoding or a charset other than UTF-8
// or US-ASCII.
func (m *Message) Bodies(t testing.TB) (text, html string) {
	t.Helper()
	msg := m.parse(t)
	bodies := map[string]string{}
	if err := walk(textproto.MIMEHeader(msg.Header), msg.Body, bodies); err != nil {
		t.Fatalf("smtptest: message from %s: %v", m.From, err)
	}
	return bodies["text/plain"], bodies["text/html"]
}

// parse parses the message, failing the test if it cannot.
func (m *Message) parse(t testing.TB) *netmail.Message {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("smtptest: message from %s does not parse: %v", m.From, err)
	}
	return msg
}

// walk adds to bodies the text/plain and text/html bodies of the entity with
// header h and body r, looking into multipart entities.
func walk(h textproto.MIMEHeader, r io.Reader, bodies map[string]string) error {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii" // RFC 2045's default
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return errors.New("Content-Type " + ct + ": " + err.Error())
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if params["boundary"] == "" {
			return errors.New("Content-Type " + ct + " has no boundary")
		}
		mr := multipart.NewReader(r, params["boundary"])
		for {
			// NextRawPart leaves the transfer encoding to decode below,
			// where NextPart would undo quoted-printable alone.
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return errors.New("reading the parts of " + mediaType + ": " + err.Error())
			}
			if err := walk(p.Header, p, bodies); err != nil {
				return err
			}
		}
	}
	if mediaType != "text/plain" && mediaType != "text/html" {
		return nil
	}
	if d, _, _ := mime.ParseMediaType(h.Get("Content-Disposition")); d == "attachment" {
		return nil
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		return errors.New(mediaType + " body in charset " + cs + ": want UTF-8 or US-ASCII")
	}
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "", "7bit", "8bit", "binary":
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r) // skips the line ends
	default:
		return errors.New(mediaType + " body in Content-Transfer-Encoding " + cte + ": want quoted-printable, base64, 7bit, 8bit or binary")
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return errors.New("decoding the " + mediaType + " body: " + err.Error())
	}
	if _, dup := bodies[mediaType]; dup {
		return errors.New("two " + mediaType + " bodies")
	}
	bodies[mediaType] = strings.ReplaceAll(string(body), "\r\n", "\n")
	return nil
}

// session is one SMTP connection's conversation.
type session struct {
	s      *Server
	authed bool
	msg    *Message
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(string) (sasl.Server, error) {
	ss.s.mu.Lock()
	ss.s.auths++
	ss.s.mu.Unlock()
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != ss.s.opts.User || password != ss.s.opts.Password {
			return errors.New("invalid user name or password")
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.User != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.msg.From = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := ss.msg
	m.Data = data
	ss.msg = &Message{}
	if ss.s.opts.OnData != nil {
		if err := ss.s.opts.OnData(m); err != nil {
			return err
		}
	}
	ss.s.keep(m)
	return nil
}

func (ss *session) Reset()        { ss.msg = &Message{} }
func (ss *session) Logout() error { return nil }
