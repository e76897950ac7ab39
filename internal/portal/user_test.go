package portal

import "testing"

func TestAccessPolicy(t *testing.T) {
	t.Parallel()
	policy := AccessPolicy{
		StaffGroups:       []string{"2i2c-staff"},
		StaffEmailDomains: []string{"2i2c.org"},
		StaffEmails:       []string{"contractor@example.net"},
	}
	tests := []struct {
		name string
		id   Identity
		want Role
	}{
		{"verified staff domain", Identity{Email: "sam@2i2c.org", EmailVerified: true}, RoleStaff},
		{"staff domain in another case", Identity{Email: "Sam@2I2C.org", EmailVerified: true}, RoleStaff},
		{"unverified email in staff domain stays customer", Identity{Email: "sam@2i2c.org"}, RoleCustomer},
		{"subdomain is not the staff domain", Identity{Email: "x@evil.2i2c.org", EmailVerified: true}, RoleCustomer},
		{"lookalike domain", Identity{Email: "x@not2i2c.org", EmailVerified: true}, RoleCustomer},
		{"staff group, any email", Identity{Email: "x@example.org", Groups: []string{"users", "2i2c-staff"}}, RoleStaff},
		{"group names are exact", Identity{Email: "x@example.org", Groups: []string{"2I2C-STAFF"}}, RoleCustomer},
		{"listed email, verified", Identity{Email: "contractor@example.net", EmailVerified: true}, RoleStaff},
		{"listed email, unverified", Identity{Email: "contractor@example.net"}, RoleCustomer},
		{"customer", Identity{Email: "alice@example.org", EmailVerified: true}, RoleCustomer},
		{"no email", Identity{}, RoleCustomer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := policy.Role(tt.id); got != tt.want {
				t.Errorf("Role(%+v) = %s, want %s", tt.id, got, tt.want)
			}
		})
	}
}

func TestAccessPolicyAllowed(t *testing.T) {
	t.Parallel()
	open := AccessPolicy{}
	if !open.Allowed(Identity{Email: "anyone@anywhere.example"}) {
		t.Error("with no allowed domains everyone may sign in")
	}
	closed := AccessPolicy{AllowedEmailDomains: []string{"example.org", "2i2c.org"}}
	tests := []struct {
		id   Identity
		want bool
	}{
		{Identity{Email: "alice@example.org", EmailVerified: true}, true},
		{Identity{Email: "alice@EXAMPLE.org", EmailVerified: true}, true},
		{Identity{Email: "alice@example.org"}, false},
		{Identity{Email: "mallory@example.com", EmailVerified: true}, false},
		{Identity{Email: "", EmailVerified: true}, false},
	}
	for _, tt := range tests {
		if got := closed.Allowed(tt.id); got != tt.want {
			t.Errorf("Allowed(%+v) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// TestStaffEmailsCompareByASCIIFoldingOnly: only A–Z fold to a–z. Unicode
// folding would make "ſam" (long s) of "sam" and a Kelvin sign of a k, so
// that an address nobody configured passed for a staff one; other non-ASCII
// characters must be the same as configured.
func TestStaffEmailsCompareByASCIIFoldingOnly(t *testing.T) {
	t.Parallel()
	policy := AccessPolicy{
		StaffEmails:         []string{"sam@2i2c.org", "jürgen@example.net"},
		StaffEmailDomains:   []string{"kelp.org"},
		AllowedEmailDomains: []string{"2i2c.org", "example.net", "kelp.org"},
	}
	tests := []struct {
		name    string
		email   string
		staff   bool
		allowed bool
	}{
		{"listed email", "sam@2i2c.org", true, true},
		{"listed email in capitals", "SAM@2I2C.ORG", true, true},
		{"long s for s", "\u017Fam@2i2c.org", false, true},
		{"Kelvin sign for k in a staff domain", "x@\u212Aelp.org", false, false},
		{"staff domain in capitals", "x@KELP.org", true, true},
		{"Cyrillic a in a listed email", "s\u0430m@2i2c.org", false, true},
		{"non-ASCII as configured", "Jürgen@example.net", true, true},
		{"non-ASCII in another case", "JÜRGEN@example.net", false, true},
		{"non-ASCII decomposed", "ju\u0308rgen@example.net", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := Identity{Email: tt.email, EmailVerified: true}
			if got := policy.Role(id) == RoleStaff; got != tt.staff {
				t.Errorf("Role(%q) staff = %v, want %v", tt.email, got, tt.staff)
			}
			if got := policy.Allowed(id); got != tt.allowed {
				t.Errorf("Allowed(%q) = %v, want %v", tt.email, got, tt.allowed)
			}
		})
	}
}
