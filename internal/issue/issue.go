// Package issue is the portal's vocabulary: the domain types every other
// package speaks (users, clusters, requests, credentials, audit events), the
// sentinel errors they return, and the rules for recipients and for issuing a
// credential. It imports neither the web framework nor the database driver.
package issue

import (
	"errors"
	"fmt"
	"time"
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
