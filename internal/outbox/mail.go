package outbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/2i2c-org/credential-portal/internal/loopback"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// security is how a Mailer protects its connection to the SMTP server.
type security int

const (
	// implicitTLS (smtps://) speaks TLS from the first byte.
	implicitTLS security = iota
	// mandatoryTLS (smtp:// to another machine) upgrades with STARTTLS, and
	// sends nothing to a server that does not offer it: the message and the
	// password would cross the network in the clear.
	mandatoryTLS
	// opportunisticTLS (smtp:// to this machine) upgrades with STARTTLS
	// when offered and speaks plain SMTP otherwise: a relay or a test server
	// on the loopback, whose traffic never leaves the machine.
	opportunisticTLS
)

func (s security) String() string {
	switch s {
	case implicitTLS:
		return "implicit TLS"
	case mandatoryTLS:
		return "mandatory STARTTLS"
	case opportunisticTLS:
		return "opportunistic STARTTLS"
	}
	return "unknown"
}

// Mailer sends messages as email through one SMTP server, one connection
// per message. It is safe for concurrent use.
type Mailer struct {
	host     string
	port     int
	security security
	user     string
	password string
	from     *netmail.Address
	// idDomain ends each Message-ID: the sender's domain, which the portal
	// speaks for.
	idDomain string
	// roots verify the server's certificate; nil for the system's. Tests
	// set their own server's.
	roots *x509.CertPool
}

const (
	smtpURLForm = "want smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS)"
	// defaultMailTimeout bounds a conversation whose context has no deadline.
	defaultMailTimeout = 30 * time.Second
)

// NewMailer returns a Mailer for the SMTP server rawURL names, sending from
// address from. rawURL is smtp://user:password@host:port, with STARTTLS
// required (port 587 by default), or smtps://…, with TLS from the start
// (port 465 by default); user and password are optional, and without them
// no AUTH is tried. Plain SMTP without TLS is used only to a loopback host,
// and only when that server offers no STARTTLS. from is an address, with or
// without a name ("Portal <portal@example.org>"). The errors say what to
// fix, and never hold the password.
func NewMailer(rawURL, from string) (*Mailer, error) {
	m, err := parseSMTPURL(rawURL)
	if err != nil {
		return nil, err
	}
	from = strings.TrimSpace(from)
	if from == "" {
		return nil, errors.New(`outbox: the mail from address is not set: want an address such as portal@example.org or "2i2c Portal <portal@example.org>"`)
	}
	addr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf(`outbox: the mail from address %q is not an address (want portal@example.org or "2i2c Portal <portal@example.org>"): %w`, from, err)
	}
	m.from = addr
	m.idDomain = addr.Address[strings.LastIndexByte(addr.Address, '@')+1:]
	return m, nil
}

// parseSMTPURL reads an SMTP URL into a Mailer without its sender. Its
// errors quote no part of the URL that could be the password: a URL that
// does not parse, for one, may have been cut inside it.
func parseSMTPURL(rawURL string) (*Mailer, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, errors.New("outbox: the SMTP URL is not set: " + smtpURLForm)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("outbox: the SMTP URL is not a valid URL: " + smtpURLForm +
			", with any @, :, / or % in the user name or password percent-encoded (%40, %3A, %2F, %25)")
	}
	m := &Mailer{}
	switch u.Scheme {
	case "smtp":
		m.port, m.security = mail.DefaultPortTLS, mandatoryTLS
	case "smtps":
		m.port, m.security = mail.DefaultPortSSL, implicitTLS
	default:
		// A URL without "//" parses as scheme and opaque: print neither
		// whole, since the scheme may be a user name and the rest a password.
		return nil, errors.New("outbox: the SMTP URL's scheme is neither smtp nor smtps: " + smtpURLForm)
	}
	m.host = u.Hostname()
	if u.Opaque != "" || m.host == "" {
		return nil, errors.New("outbox: the SMTP URL names no host: " + smtpURLForm)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("outbox: the SMTP URL's port %q is not a port number (1 to 65535)", p)
		}
		m.port = n
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("outbox: the SMTP URL has something after the host and port: " + smtpURLForm)
	}
	if u.User != nil {
		m.user = u.User.Username()
		m.password, _ = u.User.Password()
		if m.user == "" && m.password != "" {
			return nil, errors.New("outbox: the SMTP URL has a password but no user name: " + smtpURLForm)
		}
	}
	if m.security == mandatoryTLS && loopback.Host(m.host) {
		m.security = opportunisticTLS
	}
	return m, nil
}

// Send sends m to m.Recipient: its text, with its HTML as the alternative
// when it has one. ctx's deadline bounds the whole conversation with the
// server. Each attempt at a message carries the same Message-ID, so that a
// mail system that got an attempt reported as failed can drop the next one.
// The error names the server and what it answered, never the password.
func (mr *Mailer) Send(ctx context.Context, m *portal.Message) error {
	msg, err := mr.message(m)
	if err != nil {
		return err
	}
	c, err := mr.client(ctx)
	if err != nil {
		return mr.scrub(fmt.Errorf("email via %s: %w", mr.addr(), err))
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return mr.scrub(fmt.Errorf("email via %s: %w", mr.addr(), err))
	}
	return nil
}

// message builds the email of m.
func (mr *Mailer) message(m *portal.Message) (*mail.Msg, error) {
	msg := mail.NewMsg()
	msg.FromMailAddress(mr.from)
	if err := msg.To(m.Recipient); err != nil {
		return nil, fmt.Errorf("email to %q: %w", m.Recipient, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(fmt.Sprintf("portal-message-%d.%d@%s", m.ID, m.CreatedAt.UnixMicro(), mr.idDomain))
	if !m.CreatedAt.IsZero() {
		// The message tells of what happened then, however late it goes out.
		msg.SetDateWithValue(m.CreatedAt)
	}
	// RFC 3834: no vacation replies or bounces of bounces to a robot.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Portal-Message", strconv.FormatInt(m.ID, 10))
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// client returns a go-mail client for one conversation, bounded by ctx's
// deadline. A client per conversation keeps the Mailer free of shared
// state: go-mail's client changes its own settings while it
// authenticates.
func (mr *Mailer) client(ctx context.Context) (*mail.Client, error) {
	timeout := defaultMailTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	return mail.NewClient(mr.host, mr.options(timeout)...)
}

// options are go-mail's settings for one conversation of at most timeout.
func (mr *Mailer) options(timeout time.Duration) []mail.Option {
	opts := []mail.Option{
		mail.WithPort(mr.port),
		mail.WithTimeout(timeout),
		mail.WithTLSConfig(&tls.Config{ServerName: mr.host, RootCAs: mr.roots, MinVersion: tls.VersionTLS12}),
		// A fresh connection for one message needs no NOOP to check it is
		// alive, nor an RSET before QUIT.
		mail.WithoutNoop(),
		mail.WithoutRset(),
	}
	switch mr.security {
	case implicitTLS:
		opts = append(opts, mail.WithSSL())
	case mandatoryTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case opportunisticTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if mr.user == "" {
		return opts
	}
	opts = append(opts, mail.WithUsername(mr.user), mail.WithPassword(mr.password))
	if mr.security == opportunisticTLS {
		// go-mail's discovery offers PLAIN and LOGIN only over TLS, and a
		// loopback server may have none; its traffic stays on this machine,
		// so they are allowed there, after the challenge-response kinds.
		opts = append(opts, mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1,
			mail.SMTPAuthCramMD5, mail.SMTPAuthPlainNoEnc, mail.SMTPAuthLoginNoEnc))
	} else {
		// Over TLS, the strongest kind the server offers.
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover))
	}
	return opts
}

func (mr *Mailer) addr() string {
	return mr.host + ":" + strconv.Itoa(mr.port)
}

// scrub replaces err by its text with the password blotted out, should a
// server or a library have echoed it. The chain is dropped with it: a
// wrapped error would still hold the password.
func (mr *Mailer) scrub(err error) error {
	if mr.password == "" || !strings.Contains(err.Error(), mr.password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), mr.password, "[password]"))
}
