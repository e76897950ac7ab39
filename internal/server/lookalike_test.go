package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TestLookalikeOfAStaffEmailSignsInAsCustomer: sam@2i2c.org is staff by
// name. Someone whose provider vouches for "ſam@2i2c.org" (a long s, which
// Unicode folds to s) signs in as a customer and is refused the staff
// pages; the listed address itself, in capitals, is staff.
func TestLookalikeOfAStaffEmailSignsInAsCustomer(t *testing.T) {
	t.Parallel()
	idp := startMockIdP(t)
	p := newPortal(t, portalOptions{issuer: idp.m.Issuer(), clientID: idp.m.ClientID, clientSecret: idp.m.ClientSecret,
		access: &portal.AccessPolicy{StaffEmails: []string{"sam@2i2c.org"}}})

	lookalike := p.browser()
	r := lookalike.signInVia(idp, &mockoidc.MockUser{Subject: "imposter", Email: "\u017Fam@2i2c.org", EmailVerified: true})
	if !strings.Contains(r.Body, "role-customer") || strings.Contains(r.Body, "role-staff") {
		t.Fatalf("ſam@2i2c.org signed in as staff:\n%s", r.Body)
	}
	if q := lookalike.get("/staff/requests"); q.StatusCode != http.StatusForbidden {
		t.Errorf("ſam@2i2c.org on the staff queue: %d, want 403", q.StatusCode)
	}

	r = p.browser().signInVia(idp, &mockoidc.MockUser{Subject: "sam", Email: "SAM@2i2c.org", EmailVerified: true})
	if !strings.Contains(r.Body, "role-staff") {
		t.Errorf("SAM@2i2c.org is not staff:\n%s", r.Body)
	}
}
