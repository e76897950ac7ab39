package workflow

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// MaxTokenName is the longest token name, in characters.
const MaxTokenName = 100

// TokenInput is what a person asks for in a new token.
type TokenInput struct {
	Name          string
	Scopes        []string
	ExpiresInDays int // 0: portal.DefaultTokenDays
}

// NewToken is a token just made: what the owner sees of it, and the token
// itself, which exists only in this answer and is never stored or shown
// again.
type NewToken struct {
	*portal.Token
	Secret string
}

// newTokenSecret draws a token: the prefix and 160 random bits.
func newTokenSecret() string {
	var b [20]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return portal.TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateToken makes a personal access token for the signed-in actor and
// audits it (with its scopes, never its value) in one transaction. Only a
// person in a browser session makes tokens: a token that could make tokens
// would outlive its own expiry and revocation. Returns portal.ErrForbidden
// for anyone else, and for a staff scope asked by someone who is not staff;
// portal.ErrInvalid for a name, scope or lifetime to fix; and
// portal.ErrConflict when the person holds portal.MaxActiveTokens already.
func (s *Service) CreateToken(ctx context.Context, a Actor, in TokenInput) (*NewToken, error) {
	if a.User == nil || a.isSystem() {
		return nil, portal.ErrForbidden
	}
	if a.Token != nil {
		return nil, portal.Errorf(portal.KindForbidden,
			"A token cannot make tokens. Sign in to the portal and make one on the Tokens page.")
	}
	name, err := portal.CleanText("name", in.Name, MaxTokenName)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, portal.Invalid("name", "Name the token after the script or machine that uses it, so that you know which to revoke.")
	}
	scopes, err := portal.ParseScopes(in.Scopes)
	if err != nil {
		return nil, err
	}
	for _, sc := range scopes {
		if sc.StaffOnly() && !a.isStaff() {
			return nil, portal.Errorf(portal.KindForbidden,
				"Only 2i2c staff may give a token the %s scope. Ask for read and request only.", sc)
		}
	}
	days := in.ExpiresInDays
	if days == 0 {
		days = portal.DefaultTokenDays
	}
	if days < 1 || days > portal.MaxTokenDays {
		return nil, portal.Invalid("expires_in_days", "A token lives from 1 to %d days; leave it out for %d.",
			portal.MaxTokenDays, portal.DefaultTokenDays)
	}
	secret := newTokenSecret()
	t := &portal.Token{UserID: a.User.ID, Name: name, Scopes: scopes,
		ExpiresAt: s.now().Add(time.Duration(days) * 24 * time.Hour).Truncate(time.Microsecond)}
	err = s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if err := tx.LockUserTokens(ctx, a.User.ID); err != nil {
			return err
		}
		n, err := tx.ActiveTokenCount(ctx, a.User.ID)
		if err != nil {
			return err
		}
		if n >= portal.MaxActiveTokens {
			return portal.Errorf(portal.KindConflict,
				"You hold %d active tokens, the most one person may. Revoke one you no longer use first.", n)
		}
		if err := tx.CreateToken(ctx, t, store.TokenHash(secret)); err != nil {
			return err
		}
		return audit(a.event(portal.ActionTokenCreated, portal.SubjectToken, t.ID, nil, map[string]any{
			"name": t.Name, "scopes": t.ScopeList(), "expires_at": t.ExpiresAt.UTC().Format(time.RFC3339),
		}))
	})
	if err != nil {
		return nil, err
	}
	return &NewToken{Token: t, Secret: secret}, nil
}

// Tokens is a page of user userID's tokens, newest first, for that person
// or for staff; to anyone else the person does not exist
// (portal.ErrNotFound). Returns an Error of portal.KindInvalid for a limit
// out of range.
func (s *Service) Tokens(ctx context.Context, a Actor, userID int64, q portal.PageQuery) (*portal.Page[*portal.Token], error) {
	if !a.mayRead(userID) {
		return nil, fmt.Errorf("tokens of user %d: %w", userID, portal.ErrNotFound)
	}
	if err := q.Valid(); err != nil {
		return nil, err
	}
	ts, err := s.store.TokensPage(ctx, userID, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	return portal.NewPage(ts, q.Limit, func(t *portal.Token) portal.PageCursor {
		return portal.PageCursor{At: t.CreatedAt, ID: t.ID}
	}), nil
}

// RevokeToken revokes token id, by its owner or staff, and audits it in the
// same transaction; the token is refused from its next use. A staff member
// acting through a token needs its admin scope to revoke another person's.
// Returns the token as revoked. A token that is not the actor's to see is
// portal.ErrNotFound; one revoked already or expired portal.ErrConflict.
func (s *Service) RevokeToken(ctx context.Context, a Actor, id int64) (*portal.Token, error) {
	var t *portal.Token
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		var err error
		if t, err = visible[*portal.Token](a, Actor.mayRead)(tx.TokenByID(ctx, id)); err != nil {
			return err
		}
		if a.Token != nil && !a.is(t.UserID) && !a.Token.Allows(a.User, portal.ScopeAdmin) {
			return portal.Errorf(portal.KindForbidden, "Revoking another person's token needs a token with the admin scope.")
		}
		switch t.State(s.now()) {
		case portal.TokenRevoked:
			return portal.Errorf(portal.KindConflict, "This token is revoked already.")
		case portal.TokenExpired:
			return portal.Errorf(portal.KindConflict, "This token has expired already; it opens nothing.")
		}
		if err := tx.RevokeToken(ctx, id, a.User.ID); err != nil {
			return err
		}
		if t, err = tx.TokenByID(ctx, id); err != nil {
			return err
		}
		return audit(a.event(portal.ActionTokenRevoked, portal.SubjectToken, id, nil, map[string]any{
			"name": t.Name, "by": a.endedBy(t.UserID),
		}))
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// RevokeTokens revokes every active token of user userID, by that person
// or staff, audited in the same transaction, and returns how many there
// were: what staff do when someone leaves (their role changes only at their
// next sign-in, which may never come). A staff member acting through a
// token needs its admin scope to revoke another person's. To anyone else
// the person does not exist (portal.ErrNotFound).
func (s *Service) RevokeTokens(ctx context.Context, a Actor, userID int64) (int, error) {
	if !a.mayRead(userID) {
		return 0, fmt.Errorf("tokens of user %d: %w", userID, portal.ErrNotFound)
	}
	if a.Token != nil && !a.is(userID) && !a.Token.Allows(a.User, portal.ScopeAdmin) {
		return 0, portal.Errorf(portal.KindForbidden, "Revoking another person's tokens needs a token with the admin scope.")
	}
	var n int
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if _, err := tx.UserByID(ctx, userID); err != nil {
			return err
		}
		var err error
		if n, err = tx.RevokeUserTokens(ctx, userID, a.User.ID); err != nil {
			return err
		}
		return audit(a.event(portal.ActionTokensRevoked, portal.SubjectUser, userID, nil,
			map[string]any{"tokens": n, "by": a.endedBy(userID)}))
	})
	return n, err
}

// TokenUser returns the person a personal access token acts for, as they
// are now, and the token, and notes its use from ip. It is how a bearer
// request signs in, so it takes no Actor. Returns an Error of
// portal.KindUnauthorized, saying which, for a token the portal does not
// know, one that has expired and one that was revoked.
func (s *Service) TokenUser(ctx context.Context, secret, ip string) (*portal.User, *portal.Token, error) {
	if !strings.HasPrefix(secret, portal.TokenPrefix) {
		return nil, nil, portal.Errorf(portal.KindUnauthorized,
			"That is not a portal token: they start with %s. Make one on the Tokens page.", portal.TokenPrefix)
	}
	t, u, err := s.store.TokenUse(ctx, store.TokenHash(secret), ip)
	switch {
	case errors.Is(err, portal.ErrNotFound):
		return nil, nil, portal.Errorf(portal.KindUnauthorized,
			"The portal knows no such token. Check that it was copied whole, or make a new one on the Tokens page.")
	case err != nil:
		return nil, nil, err
	}
	switch t.State(s.now()) {
	case portal.TokenRevoked:
		return nil, nil, portal.Errorf(portal.KindUnauthorized, "This token was revoked. Make a new one on the Tokens page.")
	case portal.TokenExpired:
		return nil, nil, portal.Errorf(portal.KindUnauthorized, "This token expired on %s. Make a new one on the Tokens page.",
			t.ExpiresAt.UTC().Format("2 January 2006 15:04 UTC"))
	}
	return u, t, nil
}
