// Package issue makes credentials: it reads the customer's public key
// (ParseRecipient), draws a username and password, hashes the password with
// bcrypt, renders credentials.txt and encrypts it to the key with age. It
// speaks the vocabulary of package portal and holds no state.
package issue

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"fmt"
	neturl "net/url"
	"regexp"
	"runtime"
	"strings"
	"text/template"
	"time"
	"unicode"

	"filippo.io/age"
	"golang.org/x/crypto/bcrypt"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// DefaultBcryptCost is the bcrypt cost of credential password hashes.
//
// bcrypt's cost exists to slow down guessing of passwords people chose; these
// passwords are 130 random bits, which no cost factor makes meaningfully
// harder or easier to guess, so a low cost loses no security. It does cost
// Prometheus: exporter-toolkit checks basic auth with bcrypt, one check at a
// time, on every request it has not cached. The README gives the measured
// throughput at cost 5 and 10 (`make bench`, BenchmarkPrometheusAuth).
const DefaultBcryptCost = 5

// Issued is a credential fresh from Issue, ready to store. It holds no
// plaintext password: that exists only in memory inside Issue, and afterwards
// only inside Ciphertext.
type Issued struct {
	Username     string
	PasswordHash string // bcrypt, as Prometheus's web config wants it
	Ciphertext   []byte // credentials.txt.age, in binary age format
	Fingerprint  string // of the recipient, as in Recipient.Fingerprint
	IssuedAt     time.Time
	ExpiresAt    time.Time
}

// Secrets are a new credential's username and password, with the password's
// bcrypt hash being computed in the background. bcrypt is most of the time it
// takes to issue a credential and depends on nothing else, so a caller starts
// it first and does its other work (reading the request, the database
// writes, the age encryption) while it runs on another core.
type Secrets struct {
	username, password string
	cost               int
	hashed             chan hashResult // receives once
}

type hashResult struct {
	hash string
	err  error
}

// NewSecrets draws a username and a password and starts hashing the password
// at bcryptCost. Secrets issue one credential; their Issue waits for the hash.
func NewSecrets(bcryptCost int) *Secrets {
	sec := &Secrets{username: NewUsername(), password: NewPassword(), cost: bcryptCost, hashed: make(chan hashResult, 1)}
	go func() {
		hash, err := HashPassword(sec.password, bcryptCost)
		sec.hashed <- hashResult{hash, err}
	}()
	// The hash is meant to run beside the caller's database round trips. A
	// new goroutine starts on the caller's processor, so without a yield the
	// hash takes that processor when the caller blocks on the network, and
	// the runtime may not look at the network again, and wake the caller,
	// until the hash is done. Yielding lets the hash start now, and the
	// caller go on on another processor, which, once it waits on the
	// network, watches it.
	runtime.Gosched()
	return sec
}

// Username is the username these secrets issue, known before the hash is.
func (sec *Secrets) Username() string { return sec.username }

// Lifetime is when a credential for c issued at now starts and ends, as
// Issue sets them: in UTC, truncated to the second, ending at expiresAt or,
// when that is zero, after c.CredentialTTL(). c must be valid.
func Lifetime(c *portal.Cluster, now, expiresAt time.Time) (issuedAt, expires time.Time) {
	issuedAt = now.UTC().Truncate(time.Second)
	if expiresAt.IsZero() {
		expiresAt = issuedAt.Add(c.CredentialTTL())
	}
	return issuedAt, expiresAt.UTC().Truncate(time.Second)
}

// Issue makes the credential of these secrets for cluster c, encrypted to r:
// the username, the password's bcrypt hash, and credentials.txt encrypted
// with age. Times are in UTC, truncated to the second so that the file and
// the database (which keeps microseconds) show the same expiry; the
// credential expires at expiresAt, or when that is zero after
// c.CredentialTTL(). It renders and encrypts credentials.txt while the hash is
// computed, then waits for the hash. Call it once.
//
// Returns portal.ErrInvalid if c or r is missing or unusable (no lifetime, no
// valid Prometheus URL, a Recipient not from ParseRecipient), now is zero, or
// the bcrypt cost is out of bcrypt's range. The username is random: should it
// clash with one already issued for the cluster, the database refuses it and
// the caller issues again with new Secrets.
func (sec *Secrets) Issue(c *portal.Cluster, r *Recipient, now, expiresAt time.Time) (*Issued, error) {
	// The hash must be collected whatever happens, so the goroutine ends.
	hash := func() (string, error) { res := <-sec.hashed; return res.hash, res.err }
	switch {
	case c == nil:
		hash()
		return nil, portal.Invalid("cluster", "No cluster to issue a credential for.")
	case c.CredentialTTLDays < 1:
		hash()
		return nil, portal.Invalid("credential_ttl_days", "Cluster %s has a credential lifetime of %d days; it must be at least 1.",
			c.Name, c.CredentialTTLDays)
	case r == nil || r.age == nil:
		hash()
		return nil, portal.Invalid(fieldPublicKey, "No public key to encrypt to.")
	case now.IsZero():
		hash()
		return nil, portal.Invalid("", "The issue time is missing.")
	}

	issuedAt, expiresAt := Lifetime(c, now, expiresAt)
	plaintext, err := RenderCredentialsFile(&CredentialsFile{
		Cluster:   c,
		Username:  sec.username,
		Password:  sec.password,
		IssuedAt:  issuedAt,
		ExpiresAt: expiresAt,
	})
	var ciphertext []byte
	if err == nil {
		ciphertext, err = Encrypt(plaintext, r)
	}
	passwordHash, herr := hash()
	switch {
	case herr != nil:
		return nil, herr
	case err != nil:
		return nil, err
	}
	return &Issued{
		Username:     sec.username,
		PasswordHash: passwordHash,
		Ciphertext:   ciphertext,
		Fingerprint:  r.Fingerprint,
		IssuedAt:     issuedAt,
		ExpiresAt:    expiresAt,
	}, nil
}

// NewUsername returns a new basic-auth username: "c-" and 10 random lowercase
// base32 characters (50 bits). It says nothing of the customer or cluster
// because usernames are visible in 2i2c's configuration repository.
// crypto/rand cannot fail (it crashes the program instead), so neither can
// NewUsername.
func NewUsername() string {
	return "c-" + strings.ToLower(rand.Text()[:10])
}

// NewPassword returns a new password of 26 base32 characters from
// crypto/rand: 130 bits. Its alphabet (A–Z, 2–7) needs no quoting in a shell
// command, a URL or an htpasswd file. crypto/rand cannot fail (it crashes the
// program instead), so neither can NewPassword.
func NewPassword() string {
	return rand.Text()
}

// HashPassword returns the bcrypt hash of password at cost. Returns portal.ErrInvalid
// if cost is outside bcrypt's range or password longer than bcrypt's 72 bytes.
func HashPassword(password string, cost int) (string, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return "", portal.Invalid("bcrypt_cost", "The bcrypt cost must be between %d and %d, not %d.",
			bcrypt.MinCost, bcrypt.MaxCost, cost)
	}
	if len(password) > 72 {
		return "", portal.Invalid("password", "A password can be at most 72 bytes, not %d.", len(password))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("issue: hash password: %w", err)
	}
	return string(hash), nil
}

// Encrypt encrypts plaintext to r in age's binary format (not armored), which
// is what "age --decrypt -i key.txt -o credentials.txt credentials.txt.age"
// reads. Returns portal.ErrInvalid if r did not come from ParseRecipient.
func Encrypt(plaintext []byte, r *Recipient) ([]byte, error) {
	if r == nil || r.age == nil {
		return nil, portal.Invalid(fieldPublicKey, "No public key to encrypt to.")
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r.age)
	if err != nil {
		return nil, fmt.Errorf("issue: encrypt to %s key %s: %w", r.Type, r.Fingerprint, err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, fmt.Errorf("issue: encrypt to %s key %s: %w", r.Type, r.Fingerprint, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("issue: encrypt to %s key %s: %w", r.Type, r.Fingerprint, err)
	}
	return buf.Bytes(), nil
}

// CredentialsFile is what credentials.txt tells its reader.
type CredentialsFile struct {
	Cluster   *portal.Cluster
	Username  string
	Password  string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

//go:embed credentials.txt.tmpl
var credentialsText string

// credentialsTemplate is parsed as the program starts, so a broken template
// stops start-up rather than an approval. It is never modified afterwards.
var credentialsTemplate = template.Must(template.New("credentials.txt").Option("missingkey=error").Parse(credentialsText))

// The file quotes these in a shell command, so they must not contain a quote;
// the patterns admit what NewUsername and NewPassword make, with room to grow.
var (
	usernamePattern = regexp.MustCompile(`^[a-z0-9-]{3,64}$`)
	passwordPattern = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,72}$`)
)

// RenderCredentialsFile returns the text of credentials.txt for f: where and
// how to use the credential, and how to keep it safe. Times are shown in UTC.
// Returns portal.ErrInvalid if a field is missing or malformed, since the file's
// curl example quotes them for a shell.
func RenderCredentialsFile(f *CredentialsFile) ([]byte, error) {
	switch {
	case f == nil || f.Cluster == nil:
		return nil, portal.Invalid("cluster", "No cluster to describe.")
	case !portal.ValidPrometheusURL(f.Cluster.PrometheusURL):
		return nil, portal.Invalid("prometheus_url", "Cluster %s has no usable Prometheus URL.", f.Cluster.Name)
	case strings.ContainsFunc(f.Cluster.Title(), unicode.IsControl):
		return nil, portal.Invalid("display_name", "Cluster %s's display name must be a single line of text.", f.Cluster.Name)
	case !usernamePattern.MatchString(f.Username):
		return nil, portal.Invalid("username", "The username must be 3 to 64 characters from a-z, 0-9 and -.")
	case !passwordPattern.MatchString(f.Password):
		return nil, portal.Invalid("password", "The password must be 16 to 72 characters without spaces or quotes.")
	case f.IssuedAt.IsZero() || !f.ExpiresAt.After(f.IssuedAt):
		return nil, portal.Invalid("expires_at", "The credential must expire after it is issued.")
	}

	url := strings.TrimRight(f.Cluster.PrometheusURL, "/")
	var buf bytes.Buffer
	err := credentialsTemplate.Execute(&buf, struct {
		ClusterName, ClusterTitle, URL, QueryURL string
		Host                                     string // of the URL, as a netrc file names it
		Username, Password                       string
		IssuedAt, ExpiresAt, ExpiresHuman        string
	}{
		ClusterName:  f.Cluster.Name,
		ClusterTitle: f.Cluster.Title(),
		URL:          url,
		QueryURL:     url + "/api/v1/query",
		Host:         host(url),
		Username:     f.Username,
		Password:     f.Password,
		IssuedAt:     f.IssuedAt.UTC().Format(time.RFC3339),
		ExpiresAt:    f.ExpiresAt.UTC().Format(time.RFC3339),
		ExpiresHuman: f.ExpiresAt.UTC().Format("Monday 2 January 2006, 15:04 UTC"),
	})
	if err != nil {
		return nil, fmt.Errorf("issue: render credentials.txt: %w", err)
	}
	return buf.Bytes(), nil
}

// host is the host name of the Prometheus URL u (without a port, as netrc
// names machines), or u itself should it not parse: validation admitted it.
func host(u string) string {
	parsed, err := neturl.Parse(u)
	if err != nil || parsed.Hostname() == "" {
		return u
	}
	return parsed.Hostname()
}
