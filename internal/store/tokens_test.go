package store

import (
	"errors"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TestTokensStoreOnlyTheirHash: a token is found by its hash alone, with
// its owner as they are now; the table holds no token; a revocation is
// once; last use is noted from the address.
func TestTokensStoreOnlyTheirHash(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
	tok := &portal.Token{UserID: alice.ID, Name: "ci", Scopes: []portal.Scope{portal.ScopeRead, portal.ScopeRequest},
		ExpiresAt: time.Now().Add(time.Hour)}
	const secret = "portal-pat-the-token-itself"
	if err := s.CreateToken(ctx, tok, TokenHash(secret)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM api_tokens t WHERE strpos(row_to_json(t)::text, $1) > 0
		OR position(convert_to($1, 'UTF8') in token_hash) > 0`, secret).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows hold the token (%v)", n, err)
	}
	got, owner, err := s.TokenUse(ctx, TokenHash(secret), "192.0.2.5")
	if err != nil || got.ID != tok.ID || owner.ID != alice.ID || len(got.Scopes) != 2 {
		t.Fatalf("TokenUse: %+v, %+v, %v", got, owner, err)
	}
	if got, _ := s.TokenByID(ctx, tok.ID); got.LastUsedAt == nil || got.LastUsedIP != "192.0.2.5" {
		t.Errorf("last used %v from %q", got.LastUsedAt, got.LastUsedIP)
	}
	if _, _, err := s.TokenUse(ctx, TokenHash(secret+"x"), "192.0.2.5"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("another token's hash: %v, want not found", err)
	}
	if n, err := s.ActiveTokenCount(ctx, alice.ID); err != nil || n != 1 {
		t.Errorf("%d active tokens (%v), want 1", n, err)
	}
	if err := s.RevokeToken(ctx, tok.ID, staff.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, tok.ID, staff.ID); !errors.Is(err, portal.ErrConflict) {
		t.Errorf("revoking twice: %v, want conflict", err)
	}
	if err := s.RevokeToken(ctx, 999999, staff.ID); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("revoking no token: %v, want not found", err)
	}
	if n, _ := s.ActiveTokenCount(ctx, alice.ID); n != 0 {
		t.Errorf("%d active tokens after the revocation, want 0", n)
	}
	// The table refuses what the workflow would never write.
	bad := &portal.Token{UserID: alice.ID, Name: "x", Scopes: []portal.Scope{"write"}, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateToken(ctx, bad, TokenHash("other")); !errors.Is(err, portal.ErrInvalid) {
		t.Errorf("an unknown scope: %v, want invalid", err)
	}
}
