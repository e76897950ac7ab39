package portal

import (
	"slices"
	"strings"
	"time"
)

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

// Identity is what an identity provider says about a person at sign-in.
type Identity struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
}

// maxProvidedName is where a display name from a provider is cut, in
// bytes.
const maxProvidedName = 200

// Cleaned returns id with what its provider sent made fit to keep and to
// show: the name printable (no control or bidirectional characters, which
// PostgreSQL refuses or which change how the text reads) and cut at 200
// bytes (with an ellipsis), and each group that is not printable dropped, not altered, so that
// no group comes to match a staff group by losing a character. The email
// address is the person's and is never altered: one that is not printable
// is an Error of KindInvalid, and the sign-in is to be refused.
func (id Identity) Cleaned() (Identity, error) {
	if Printable(id.Email, len(id.Email)) != id.Email {
		return id, Invalid("email", "The identity provider sent an email address with characters that are not text "+
			"(a control character, or an invisible one that changes the direction of text).")
	}
	id.Name = strings.TrimSpace(Printable(id.Name, maxProvidedName))
	groups := make([]string, 0, len(id.Groups))
	for _, g := range id.Groups {
		if Printable(g, len(g)) == g {
			groups = append(groups, g)
		}
	}
	id.Groups = groups
	return id, nil
}

// AccessPolicy decides who may sign in and who is staff. Emails and domains
// compare with ASCII letters folded to lower case and every other character
// exactly: Unicode case folding would let "ſam@2i2c.org" (a long s) or a
// Kelvin sign pass for a configured ASCII address. So a non-ASCII address
// matches only an entry written with the same non-ASCII characters, and an
// address with any other spelling of them (another normalisation form, a
// lookalike) stays a customer.
type AccessPolicy struct {
	StaffGroups         []string // any of these in the groups claim makes staff
	StaffEmailDomains   []string // a verified email in one of these makes staff
	StaffEmails         []string // these addresses are staff
	AllowedEmailDomains []string // when set, only these domains may sign in at all
}

// Allowed reports whether id may sign in. With no allowed domains configured
// everyone may; otherwise only a verified email in one of them.
func (p AccessPolicy) Allowed(id Identity) bool {
	if len(p.AllowedEmailDomains) == 0 {
		return true
	}
	return id.EmailVerified && containsFold(p.AllowedEmailDomains, emailDomain(id.Email))
}

// Role is the role id gets at this sign-in. An unverified email never makes
// anyone staff by its domain: anyone can claim an address they do not own.
func (p AccessPolicy) Role(id Identity) Role {
	for _, g := range id.Groups {
		if slices.Contains(p.StaffGroups, g) {
			return RoleStaff
		}
	}
	if id.EmailVerified && containsFold(p.StaffEmailDomains, emailDomain(id.Email)) {
		return RoleStaff
	}
	if id.EmailVerified && containsFold(p.StaffEmails, id.Email) {
		return RoleStaff
	}
	return RoleCustomer
}

func emailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return ""
	}
	return email[at+1:]
}

func containsFold(list []string, s string) bool {
	if s == "" {
		return false
	}
	return slices.ContainsFunc(list, func(x string) bool { return asciiEqualFold(x, s) })
}

// asciiEqualFold reports whether a and b are equal once A–Z are folded to
// a–z, comparing every other byte exactly.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
