package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TokenHash is what the database holds in place of a personal access
// token: its SHA-256. The token is 160 random bits, so a fast hash is
// enough, and one per request costs microseconds.
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

const tokenColumns = `t.id, t.user_id, t.name, t.scopes, t.created_at, t.expires_at, t.last_used_at, t.last_used_ip, t.revoked_at`

func scanToken(row pgx.Row) (*portal.Token, error) {
	var t portal.Token
	err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Scopes, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.LastUsedIP, &t.RevokedAt)
	return &t, err
}

// CreateToken stores t, with hash (TokenHash of the token), and fills in
// its ID and creation time. Returns portal.ErrInvalid for a token the table
// refuses (a name too long, an unknown scope, an expiry not after now).
func (s *Store) CreateToken(ctx context.Context, t *portal.Token, hash []byte) error {
	err := s.db.QueryRow(ctx, `
		INSERT INTO api_tokens (user_id, name, token_hash, scopes, expires_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING id, created_at`,
		t.UserID, t.Name, hash, t.Scopes, t.ExpiresAt).Scan(&t.ID, &t.CreatedAt)
	return mapErr("create token", err)
}

// LockUserTokens holds user userID's row until the transaction ends, so
// that two creations at once cannot both pass the count of active tokens.
// Returns portal.ErrNotFound if there is no such user.
func (s *Store) LockUserTokens(ctx context.Context, userID int64) error {
	var id int64
	err := s.db.QueryRow(ctx, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&id)
	return mapErr(fmt.Sprintf("lock tokens of user %d", userID), err)
}

// ActiveTokenCount is how many of user userID's tokens are neither revoked
// nor expired.
func (s *Store) ActiveTokenCount(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `
		SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()`,
		userID).Scan(&n)
	return n, mapErr(fmt.Sprintf("active tokens of user %d", userID), err)
}

// tokensOrder is the order of a person's tokens: newest first, on
// api_tokens_user_idx.
var tokensOrder = keyset{at: "t.created_at", id: "t.id", desc: true}

func tokensQuery(userID int64, after *portal.PageCursor, limit int) (string, []any) {
	return tokensOrder.page(`SELECT `+tokenColumns+` FROM api_tokens t`, []string{"t.user_id = $1"}, []any{userID}, after, limit)
}

// TokensPage returns up to limit of user userID's tokens, revoked and
// expired ones too, newest first, after the cursor (from the newest when
// nil).
func (s *Store) TokensPage(ctx context.Context, userID int64, after *portal.PageCursor, limit int) ([]*portal.Token, error) {
	sql, args := tokensQuery(userID, after, pageLimit(limit))
	out, err := collect(scanToken)(s.db.Query(ctx, sql, args...))
	return out, mapErr(fmt.Sprintf("tokens of user %d", userID), err)
}

// TokenByID returns token id. Returns portal.ErrNotFound if there is none.
func (s *Store) TokenByID(ctx context.Context, id int64) (*portal.Token, error) {
	t, err := scanToken(s.db.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens t WHERE t.id = $1`, id))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("token %d", id), err)
	}
	return t, nil
}

// RevokeToken revokes token id by user by, if it is active. Returns
// portal.ErrConflict if it was revoked already or has expired, and
// portal.ErrNotFound if there is no such token.
func (s *Store) RevokeToken(ctx context.Context, id, by int64) error {
	tag, err := s.db.Exec(ctx, `
		UPDATE api_tokens SET revoked_at = now(), revoked_by = $2
		WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()`, id, by)
	if err != nil {
		return mapErr(fmt.Sprintf("revoke token %d", id), err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.TokenByID(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("store: revoke token %d: %w", id, portal.ErrConflict)
	}
	return nil
}

// TokenUse returns the token whose TokenHash is hash and its owner as they
// are now (the owner's role is read afresh at each use), and notes that it
// was used from ip (at most once a minute from one address, to spare a
// write per request). The token is returned whatever its state: the caller
// tells an expired token from a revoked one. Returns portal.ErrNotFound if
// no token has that hash.
func (s *Store) TokenUse(ctx context.Context, hash []byte, ip string) (*portal.Token, *portal.User, error) {
	var t portal.Token
	var u portal.User
	var stored []byte
	err := s.db.QueryRow(ctx, `
		WITH used AS (
			UPDATE api_tokens SET last_used_at = now(), last_used_ip = $2
			WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()
			  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute' OR last_used_ip <> $2)
		)
		SELECT t.token_hash, `+tokenColumns+`,
		       u.id, u.issuer, u.subject, u.email, u.email_verified, u.name, u.groups, u.role, u.created_at, u.last_login_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = $1`, hash, ip).Scan(&stored,
		&t.ID, &t.UserID, &t.Name, &t.Scopes, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.LastUsedIP, &t.RevokedAt,
		&u.ID, &u.Issuer, &u.Subject, &u.Email, &u.EmailVerified, &u.Name, &u.Groups, &u.Role, &u.CreatedAt, &u.LastLoginAt)
	if err != nil {
		return nil, nil, mapErr("token use", err)
	}
	// The index found the row by its hash; compare the whole hash in
	// constant time as well, so that no reading of the token depends on
	// how much of it matched.
	if subtle.ConstantTimeCompare(stored, hash) != 1 {
		return nil, nil, fmt.Errorf("store: token use: %w", portal.ErrNotFound)
	}
	return &t, &u, nil
}

// RevokeUserTokens revokes every active token of user userID by user by,
// and returns how many there were.
func (s *Store) RevokeUserTokens(ctx context.Context, userID, by int64) (int, error) {
	tag, err := s.db.Exec(ctx, `
		UPDATE api_tokens SET revoked_at = now(), revoked_by = $2
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()`, userID, by)
	if err != nil {
		return 0, mapErr(fmt.Sprintf("revoke tokens of user %d", userID), err)
	}
	return int(tag.RowsAffected()), nil
}
