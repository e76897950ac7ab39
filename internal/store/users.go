package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

const userColumns = `id, issuer, subject, email, email_verified, name, groups, role, created_at, last_login_at`

func scanUser(row pgx.Row) (*portal.User, error) {
	var u portal.User
	err := row.Scan(&u.ID, &u.Issuer, &u.Subject, &u.Email, &u.EmailVerified, &u.Name, &u.Groups,
		&u.Role, &u.CreatedAt, &u.LastLoginAt)
	return &u, err
}

// UpsertUser records a sign-in: it creates the user known by (Issuer,
// Subject) or refreshes its email, name, groups and role, and stamps the
// sign-in time. u's ID and times are filled in.
func (s *Store) UpsertUser(ctx context.Context, u *portal.User) error {
	if u.Groups == nil {
		u.Groups = []string{}
	}
	err := s.db.QueryRow(ctx, `
		INSERT INTO users (issuer, subject, email, email_verified, name, groups, role, last_login_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (issuer, subject) DO UPDATE
		SET email = EXCLUDED.email, email_verified = EXCLUDED.email_verified, name = EXCLUDED.name,
		    groups = EXCLUDED.groups, role = EXCLUDED.role, last_login_at = EXCLUDED.last_login_at
		RETURNING id, created_at, last_login_at`,
		u.Issuer, u.Subject, u.Email, u.EmailVerified, u.Name, u.Groups, u.Role,
	).Scan(&u.ID, &u.CreatedAt, &u.LastLoginAt)
	return mapErr("upsert user", err)
}

// UserByID returns the user with id. Returns portal.ErrNotFound if there is none.
func (s *Store) UserByID(ctx context.Context, id int64) (*portal.User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, mapErr("user by id", err)
	}
	return u, nil
}

// DeleteExpiredSessions removes the sessions past their expiry, and with
// them their records in user_sessions, and returns how many there were.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM sessions WHERE expiry < now()`)
	if err != nil {
		return 0, mapErr("delete expired sessions", err)
	}
	return tag.RowsAffected(), nil
}
