package workflow_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// TestTokenCreationRules: what a person may put in a token, and how many
// they may hold.
func TestTokenCreationRules(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	tests := []struct {
		name  string
		actor workflow.Actor
		in    workflow.TokenInput
		want  error
		field string // for ErrInvalid, the field named
	}{
		{"a customer's decide", as(f.customerA), workflow.TokenInput{Name: "bot", Scopes: []string{"read", "decide"}}, portal.ErrForbidden, ""},
		{"a customer's admin", as(f.customerA), workflow.TokenInput{Name: "bot", Scopes: []string{"admin"}}, portal.ErrForbidden, ""},
		{"staff's decide and admin", as(f.staff), workflow.TokenInput{Name: "queue bot", Scopes: []string{"decide", "admin"}}, nil, ""},
		{"no scope", as(f.customerA), workflow.TokenInput{Name: "bot"}, portal.ErrInvalid, "scopes"},
		{"an unknown scope", as(f.customerA), workflow.TokenInput{Name: "bot", Scopes: []string{"write"}}, portal.ErrInvalid, "scopes"},
		{"no name", as(f.customerA), workflow.TokenInput{Scopes: []string{"read"}}, portal.ErrInvalid, "name"},
		{"a year and a day", as(f.customerA), workflow.TokenInput{Name: "bot", Scopes: []string{"read"}, ExpiresInDays: 366}, portal.ErrInvalid, "expires_in_days"},
		{"a negative lifetime", as(f.customerA), workflow.TokenInput{Name: "bot", Scopes: []string{"read"}, ExpiresInDays: -1}, portal.ErrInvalid, "expires_in_days"},
		{"a year", as(f.customerA), workflow.TokenInput{Name: "bot", Scopes: []string{"read"}, ExpiresInDays: 365}, nil, ""},
		{"a secret as the name", as(f.customerA), workflow.TokenInput{Name: "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ", Scopes: []string{"read"}}, portal.ErrInvalid, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.CreateToken(t.Context(), tt.actor, tt.in)
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Fatalf("CreateToken: %v, want %v", err, tt.want)
			}
			var pe *portal.Error
			if tt.field != "" && (!errors.As(err, &pe) || pe.Field != tt.field) {
				t.Errorf("the refusal names field %q, want %q", pe.Field, tt.field)
			}
		})
	}

	// A token makes no tokens: it would outlive its revocation.
	nt := f.token(t, f.customerB)
	byToken := as(f.customerB)
	byToken.Token = nt.Token
	if _, err := f.svc.CreateToken(t.Context(), byToken, workflow.TokenInput{Name: "child", Scopes: []string{"read"}}); !errors.Is(err, portal.ErrForbidden) {
		t.Errorf("a token making a token: %v, want forbidden", err)
	}
}

// TestTwentyActiveTokensAtMost: the 21st active token is refused with what
// to do; revoking one makes room.
func TestTwentyActiveTokensAtMost(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	var first *workflow.NewToken
	for i := range portal.MaxActiveTokens {
		nt, err := f.svc.CreateToken(t.Context(), as(f.customerA), workflow.TokenInput{Name: fmt.Sprintf("bot %d", i), Scopes: []string{"read"}})
		if err != nil {
			t.Fatalf("token %d: %v", i+1, err)
		}
		if first == nil {
			first = nt
		}
	}
	_, err := f.svc.CreateToken(t.Context(), as(f.customerA), workflow.TokenInput{Name: "one more", Scopes: []string{"read"}})
	if !errors.Is(err, portal.ErrConflict) || !strings.Contains(err.Error(), "Revoke one") {
		t.Fatalf("token 21: %v, want a conflict saying to revoke one", err)
	}
	if _, err := f.svc.RevokeToken(t.Context(), as(f.customerA), first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateToken(t.Context(), as(f.customerA), workflow.TokenInput{Name: "one more", Scopes: []string{"read"}}); err != nil {
		t.Errorf("a token after revoking one: %v", err)
	}
}

// TestTokenUseSaysWhyItIsRefused: an unknown, expired or revoked token is
// unauthorized, with a message saying which; a staff scope lapses with the
// owner's staff role.
func TestTokenUseSaysWhyItIsRefused(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	nt := f.token(t, f.customerA)
	u, tok, err := f.svc.TokenUser(t.Context(), nt.Secret, "192.0.2.7")
	if err != nil || u.ID != f.customerA.ID || tok.ID != nt.ID {
		t.Fatalf("TokenUser: %v, %v, %v", u, tok, err)
	}
	if ts, _ := f.svc.Tokens(t.Context(), as(f.customerA), f.customerA.ID, firstPage); ts.Items[0].LastUsedAt == nil || ts.Items[0].LastUsedIP != "192.0.2.7" {
		t.Errorf("last used %v from %q, want now from 192.0.2.7", ts.Items[0].LastUsedAt, ts.Items[0].LastUsedIP)
	}

	expired := f.token(t, f.customerA)
	if _, err := f.st.Pool().Exec(t.Context(), `UPDATE api_tokens SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE id = $1`, expired.ID); err != nil {
		t.Fatal(err)
	}
	revoked := f.token(t, f.customerA)
	if _, err := f.svc.RevokeToken(t.Context(), as(f.customerA), revoked.ID); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, secret, says string }{
		{"expired", expired.Secret, "expired"},
		{"revoked", revoked.Secret, "revoked"},
		{"unknown", portal.TokenPrefix + strings.Repeat("x", 27), "no such token"},
		{"not a portal token", "ghp_0123456789", "not a portal token"},
	} {
		_, _, err := f.svc.TokenUser(t.Context(), tt.secret, "192.0.2.7")
		if !errors.Is(err, portal.ErrUnauthorized) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s token: %v, want unauthorized saying %q", tt.name, err, tt.says)
		}
	}

	// sam leaves the staff: his token still holds decide, and allows it no more.
	staffToken, err := f.svc.CreateToken(t.Context(), as(f.staff), workflow.TokenInput{Name: "queue", Scopes: []string{"read", "decide"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Pool().Exec(t.Context(), `UPDATE users SET role = 'customer' WHERE id = $1`, f.staff.ID); err != nil {
		t.Fatal(err)
	}
	owner, tok, err := f.svc.TokenUser(t.Context(), staffToken.Secret, "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Allows(owner, portal.ScopeDecide) || !tok.Allows(owner, portal.ScopeRead) {
		t.Errorf("after leaving the staff: decide %t, read %t; want false, true", tok.Allows(owner, portal.ScopeDecide), tok.Allows(owner, portal.ScopeRead))
	}
}

// TestStaffTokenRevokesAnothersCredentialOnlyWithAdmin: the request scope
// revokes one's own credentials; staff acting through a token need admin
// too for another person's, as for another person's tokens. Signed in,
// staff revoke anyone's.
func TestStaffTokenRevokesAnothersCredentialOnlyWithAdmin(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	through := func(u *portal.User, scopes ...string) workflow.Actor {
		nt, err := f.svc.CreateToken(t.Context(), as(u), workflow.TokenInput{Name: "ops", Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		a := as(u)
		a.Token = nt.Token
		return a
	}
	customers := f.credential(t, f.customerA)
	if _, err := f.svc.Revoke(t.Context(), through(f.staff, "request"), customers.ID, "Leaked in a notebook."); !errors.Is(err, portal.ErrForbidden) ||
		!strings.Contains(err.Error(), "admin scope") {
		t.Errorf("a staff request token revoking a customer's credential: %v, want forbidden naming the admin scope", err)
	}
	if f.isRevoked(t, customers.ID) {
		t.Fatal("the refused revocation revoked the credential")
	}
	if _, err := f.svc.Revoke(t.Context(), through(f.staff, "request", "admin"), customers.ID, "Leaked in a notebook."); err != nil {
		t.Errorf("a staff request and admin token revoking a customer's credential: %v", err)
	}

	own := f.credential(t, f.staffRequester)
	if _, err := f.svc.Revoke(t.Context(), through(f.staffRequester, "request"), own.ID, "No longer needed."); err != nil {
		t.Errorf("a staff request token revoking its owner's own credential: %v", err)
	}
	if !f.isRevoked(t, own.ID) {
		t.Error("the staff member's own credential is not revoked")
	}
}
