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

// AccessPolicy decides who may sign in and who is staff. Emails and domains
// compare case-insensitively.
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
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}
