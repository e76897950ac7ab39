package devidp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// Identity is a person the provider can sign in.
type Identity struct {
	Email  string   // lower case; also determines the subject
	Name   string   // may be empty
	Groups []string // the groups claim; 2i2c staff are in "2i2c-staff"
}

// Subject returns the sub claim the provider issues for i. It depends only on
// the email address, ignoring case, so a person keeps the same subject across
// restarts and across instances.
func (i Identity) Subject() string {
	sum := sha256.Sum256([]byte(strings.ToLower(i.Email)))
	return "dev-" + hex.EncodeToString(sum[:8])
}

// DemoIdentities returns the identities the sign-in page offers: two customers
// and one member of 2i2c staff, then a customer whose domain a demo cluster
// approves at once and a second member of staff, for two-person approval.
func DemoIdentities() []Identity {
	return []Identity{
		{Email: "alice@example.org", Name: "Alice Example"},
		{Email: "bob@example.org", Name: "Bob Example"},
		{Email: "sam@2i2c.org", Name: "Sam Staff", Groups: []string{"2i2c-staff"}},
		{Email: "erin@earthscope.org", Name: "Erin Earthscope"},
		{Email: "kai@2i2c.org", Name: "Kai Staff", Groups: []string{"2i2c-staff"}},
	}
}

// lookupIdentity returns the demo identity with the given email address, or a
// new identity with that address and name.
func lookupIdentity(email, name string) Identity {
	for _, id := range DemoIdentities() {
		if id.Email == email {
			return id
		}
	}
	return Identity{Email: email, Name: name}
}

// user is an Identity as mockoidc sees it. mockoidc's own MockUser has no name
// and leaves email_verified out of userinfo.
type user struct {
	Identity
}

var _ mockoidc.User = user{}

// scopedClaims are the claims about a user that the granted scopes release,
// as in OpenID Connect Core §5.4, with groups released by the groups scope.
type scopedClaims struct {
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

type idTokenClaims struct {
	*mockoidc.IDTokenClaims
	scopedClaims
}

type userinfoResponse struct {
	Subject string `json:"sub"`
	scopedClaims
}

// ID returns the subject claim.
func (u user) ID() string {
	return u.Subject()
}

// Claims returns the ID token claims: base (issuer, audience, subject, times,
// nonce) and what scopes release.
func (u user) Claims(scopes []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &idTokenClaims{IDTokenClaims: base, scopedClaims: u.scoped(scopes)}, nil
}

// Userinfo returns the userinfo endpoint's JSON response.
func (u user) Userinfo(scopes []string) ([]byte, error) {
	b, err := json.Marshal(userinfoResponse{Subject: u.Subject(), scopedClaims: u.scoped(scopes)})
	if err != nil {
		return nil, fmt.Errorf("devidp: userinfo for %s: %w", u.Email, err)
	}
	return b, nil
}

func (u user) scoped(scopes []string) scopedClaims {
	var c scopedClaims
	for _, scope := range scopes {
		switch scope {
		case "email":
			c.Email, c.EmailVerified = u.Email, true
		case "profile":
			c.Name = u.Name
		case "groups":
			c.Groups = slices.Clone(u.Groups)
		}
	}
	return c
}
