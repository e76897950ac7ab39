// Package issue is the portal's vocabulary: the domain types every other
// package speaks (users, clusters, requests, credentials, audit events), the
// sentinel errors they return, and the rules for recipients and for issuing a
// credential. It imports neither the web framework nor the database driver.
package issue

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. Callers test them with errors.Is; the web layer maps them
// to HTTP statuses in one place.
var (
	// ErrNotFound: the object does not exist, or the caller may not know it does.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change clashes with the current state (a duplicate, a
	// decision already taken).
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the caller is known but may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid: the input is wrong; wrapped in an *InvalidError that says what to fix.
	ErrInvalid = errors.New("invalid input")
)

// InvalidError says which field is wrong and what to do about it. It matches
// ErrInvalid under errors.Is, so callers need not know the concrete type.
type InvalidError struct {
	Field   string // form field or JSON key; empty when the whole input is wrong
	Message string // a sentence for the person who typed it
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Is reports that an InvalidError is an ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns an *InvalidError for field with a formatted message.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Role is what a user may do; it is recomputed at every sign-in.
type Role string

// The roles.
const (
	RoleCustomer Role = "customer"
	RoleStaff    Role = "staff"
)

// User is a person known through an OIDC provider. Issuer and Subject are the
// identity; the rest is refreshed at every sign-in.
type User struct {
	ID            int64
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
	Role          Role
	CreatedAt     time.Time
	LastLoginAt   *time.Time
}

// IsStaff reports whether u is a 2i2c engineer.
func (u *User) IsStaff() bool { return u != nil && u.Role == RoleStaff }

// DisplayName is the name to show, falling back to the email.
func (u *User) DisplayName() string {
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}

// DefaultCredentialTTLDays is how long a credential lives unless the cluster says otherwise.
const DefaultCredentialTTLDays = 90

// Cluster is a 2i2c cluster whose Prometheus customers may query.
type Cluster struct {
	ID                int64
	Name              string // DNS label, e.g. "awi-ciroh"
	DisplayName       string
	PrometheusURL     string // given explicitly: hosts do not follow one pattern
	CredentialTTLDays int
	Note              string // shown to customers on the request form
	Enabled           bool   // a disabled cluster takes no new requests
	CreatedAt         time.Time
	UpdatedAt         time.Time
	// SyncTokenHash is the SHA-256 of the token the cluster's agent sends;
	// nil until staff create one.
	SyncTokenHash      []byte
	SyncTokenCreatedAt *time.Time
}

// Title is the name to show: the display name, else the DNS name.
func (c *Cluster) Title() string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.Name
}

// CredentialTTL is the lifetime of a credential issued for c.
func (c *Cluster) CredentialTTL() time.Duration {
	return time.Duration(c.CredentialTTLDays) * 24 * time.Hour
}

// RequestStatus is where a request stands. Only a pending request can change.
type RequestStatus string

// The request statuses.
const (
	StatusPending   RequestStatus = "pending"
	StatusApproved  RequestStatus = "approved"
	StatusDenied    RequestStatus = "denied"
	StatusCancelled RequestStatus = "cancelled"
)

// Justification length limits, in characters.
const (
	MinJustification = 10
	MaxJustification = 2000
)

// Request is a customer's request for a credential on one cluster.
type Request struct {
	ID                 int64
	UserID             int64
	ClusterID          int64
	PublicKey          string
	KeyType            KeyType
	KeyFingerprint     string
	Justification      string
	Status             RequestStatus
	DecidedBy          *int64
	DecidedAt          *time.Time
	DecisionNote       string
	RenewsCredentialID *int64 // set when the request renews a credential
	CreatedAt          time.Time

	// Read with the request, for display.
	ClusterName    string
	RequesterEmail string
	RequesterName  string
	DeciderEmail   string
	CredentialID   *int64 // the credential issued for it, once approved
}

// CredentialState is what a credential is worth right now.
type CredentialState string

// The credential states.
const (
	CredentialActive  CredentialState = "active"
	CredentialExpired CredentialState = "expired"
	CredentialRevoked CredentialState = "revoked"
)

// Credential is a Prometheus basic-auth credential issued for an approved
// request. It never holds the password: only its bcrypt hash, and the
// credentials.txt encrypted to the customer's key.
type Credential struct {
	ID             int64
	RequestID      int64
	UserID         int64
	ClusterID      int64
	Username       string
	PasswordHash   string
	Ciphertext     []byte // loaded only where it is needed: the download
	KeyFingerprint string
	IssuedAt       time.Time
	ExpiresAt      time.Time
	RevokedAt      *time.Time
	RevokedBy      *int64
	RevokeReason   string
	Compromised    bool
	DownloadCount  int
	LastDownloadAt *time.Time

	// Read with the credential, for display.
	ClusterName   string
	PrometheusURL string
	OwnerEmail    string
}

// State is the credential's state at now: revoked wins over expired.
func (c *Credential) State(now time.Time) CredentialState {
	switch {
	case c.RevokedAt != nil:
		return CredentialRevoked
	case !now.Before(c.ExpiresAt):
		return CredentialExpired
	}
	return CredentialActive
}

// Problem is a refusal with a sentence for the person who asked: the request
// is already decided, the credential is revoked, staff may not approve their
// own request. It matches its Kind (ErrConflict, ErrForbidden, ErrNotFound…)
// under errors.Is.
type Problem struct {
	Kind    error
	Message string
}

func (p *Problem) Error() string { return p.Message }

// Unwrap returns the Kind.
func (p *Problem) Unwrap() error { return p.Kind }

// Refuse returns a *Problem of kind with a formatted message.
func Refuse(kind error, format string, args ...any) error {
	return &Problem{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// CleanText checks text a person typed for field: it must be valid UTF-8
// without NUL or other control characters (line breaks and tabs aside), and
// at most max characters once trimmed. It returns the trimmed text, or an
// *InvalidError saying what to fix. PostgreSQL refuses such bytes, and
// nothing legitimate needs them.
func CleanText(field, text string, max int) (string, error) {
	if !utf8.ValidString(text) {
		return "", Invalid(field, "This holds bytes that are not text (not UTF-8). Type or paste it again as plain text.")
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return "", Invalid(field, "This holds a control character (%U). Type or paste it again as plain text.", r)
		}
	}
	text = strings.TrimSpace(text)
	if n := utf8.RuneCountInString(text); n > max {
		return "", Invalid(field, "This can be at most %d characters, not %d.", max, n)
	}
	return text, nil
}

// Printable returns s as valid UTF-8 without control characters, cut to at
// most max bytes, for values taken from request headers (user agents) that
// are kept but not typed by anyone the portal must answer.
func Printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
