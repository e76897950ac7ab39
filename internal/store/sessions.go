package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// SessionKey is what the database holds in place of a session token: its
// SHA-256, base64url without padding. The token is 256 random bits (scs
// draws them), so a fast hash is enough: nobody can search for a token that
// has a given hash. Both the sessions table and user_sessions are keyed by
// it, so what the database holds, or a backup of it, opens no session.
func SessionKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

const sessionColumns = `us.id, us.user_id, us.created_at, us.last_seen_at, s.expiry, us.ip, us.user_agent`

// scanSession reads sessionColumns and then whether the session is the
// asking browser's.
func scanSession(row pgx.Row) (*portal.Session, error) {
	var s portal.Session
	err := row.Scan(&s.ID, &s.UserID, &s.CreatedAt, &s.LastSeenAt, &s.ExpiresAt, &s.IP, &s.UserAgent, &s.Current)
	return &s, err
}

// CreateUserSession records that the session keyed key signs in user
// userID, from ip with userAgent. The session's row must exist already
// (scs has committed it); a key recorded already is portal.ErrConflict, a
// missing session or user portal.ErrInvalid.
func (s *Store) CreateUserSession(ctx context.Context, key string, userID int64, ip, userAgent string) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO user_sessions (token_hash, user_id, ip, user_agent) VALUES ($1, $2, $3, $4)`,
		key, userID, ip, userAgent)
	return mapErr("create user session", err)
}

// OpenedSession is a live session as a request opens it: the data scs
// keeps, and the person its record in user_sessions signs in.
type OpenedSession struct {
	Data []byte
	// Expiry is when the session ends unless written again: its idle
	// expiry, or the end of its lifetime if that is sooner.
	Expiry time.Time
	// User is nil when the session signs in nobody: a sign-in under way, or
	// a record ended (signed out everywhere, by staff) or never made.
	User *portal.User
}

// OpenSession reads the live (unexpired) session keyed key with the person
// its record signs in, in one statement, and notes that the session was seen
// now from ip with userAgent (at most once a minute from one address, to
// spare a write per request). Returns portal.ErrNotFound if there is no live
// session keyed key.
func (s *Store) OpenSession(ctx context.Context, key, ip, userAgent string) (*OpenedSession, error) {
	var (
		o  OpenedSession
		u  portal.User
		id *int64
	)
	// The user's columns are NULL for a session that signs in nobody: scanned
	// through pointers, as scanUser cannot.
	var (
		issuer, subject, email, name, role *string
		verified                           *bool
		groups                             []string
		created                            *time.Time
		lastLogin                          *time.Time
	)
	err := s.db.QueryRow(ctx, `
		WITH seen AS (
			UPDATE user_sessions SET last_seen_at = now(), ip = $2, user_agent = $3
			WHERE token_hash = $1 AND (last_seen_at < now() - interval '1 minute' OR ip <> $2)
		)
		SELECT s.data, s.expiry, u.id, u.issuer, u.subject, u.email, u.email_verified, u.name, u.groups, u.role,
			u.created_at, u.last_login_at
		FROM sessions s
		LEFT JOIN user_sessions us ON us.token_hash = s.token
		LEFT JOIN users u ON u.id = us.user_id
		WHERE s.token = $1 AND current_timestamp < s.expiry`,
		key, ip, userAgent).Scan(&o.Data, &o.Expiry, &id, &issuer, &subject, &email, &verified, &name, &groups, &role,
		&created, &lastLogin)
	if err != nil {
		return nil, mapErr("open session", err)
	}
	if id != nil {
		u = portal.User{ID: *id, Issuer: *issuer, Subject: *subject, Email: *email, EmailVerified: *verified,
			Name: *name, Groups: groups, Role: portal.Role(*role), CreatedAt: *created, LastLoginAt: lastLogin}
		o.User = &u
	}
	return &o, nil
}

// userSessionsOrder is the order of a person's sessions: the latest sign-in
// first, on user_sessions_signed_in_idx. Not the last seen first: that
// changes at every request, and would shift the pages.
var userSessionsOrder = keyset{at: "us.created_at", id: "us.id", desc: true}

func userSessionsQuery(userID int64, current string, after *portal.PageCursor, limit int) (string, []any) {
	return userSessionsOrder.page(`SELECT `+sessionColumns+`, us.token_hash = $2
		FROM user_sessions us JOIN sessions s ON s.token = us.token_hash`,
		[]string{"us.user_id = $1", "s.expiry > now()"}, []any{userID, current}, after, limit)
}

// UserSessionsPage returns up to limit of user userID's open (unexpired)
// sessions, the latest sign-in first, after the cursor (from the latest when
// nil); the one keyed current is marked.
func (s *Store) UserSessionsPage(ctx context.Context, userID int64, current string, after *portal.PageCursor, limit int) ([]*portal.Session, error) {
	sql, args := userSessionsQuery(userID, current, after, pageLimit(limit))
	out, err := collect(scanSession)(s.db.Query(ctx, sql, args...))
	return out, mapErr(fmt.Sprintf("sessions of user %d", userID), err)
}

// SessionByID returns the open session id; the one keyed current is marked.
// Returns portal.ErrNotFound if there is none, or it has expired.
func (s *Store) SessionByID(ctx context.Context, id int64, current string) (*portal.Session, error) {
	sess, err := scanSession(s.db.QueryRow(ctx, `
		SELECT `+sessionColumns+`, us.token_hash = $2
		FROM user_sessions us JOIN sessions s ON s.token = us.token_hash
		WHERE us.id = $1 AND s.expiry > now()`, id, current))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("session %d", id), err)
	}
	return sess, nil
}

// EndSession deletes session id, and with it its record: the browser is
// signed out at its next request. Returns portal.ErrNotFound if there is no
// such session.
func (s *Store) EndSession(ctx context.Context, id int64) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM sessions WHERE token = (SELECT token_hash FROM user_sessions WHERE id = $1)`, id)
	if err != nil {
		return mapErr(fmt.Sprintf("end session %d", id), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: end session %d: %w", id, portal.ErrNotFound)
	}
	return nil
}

// EndUserSessions deletes every session of user userID, and their records,
// and returns how many were open (not yet expired).
func (s *Store) EndUserSessions(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `
		WITH ended AS (
			DELETE FROM sessions WHERE token IN (SELECT token_hash FROM user_sessions WHERE user_id = $1)
			RETURNING expiry
		)
		SELECT count(*) FILTER (WHERE expiry > now()) FROM ended`, userID).Scan(&n)
	return n, mapErr(fmt.Sprintf("end sessions of user %d", userID), err)
}

// peopleOrder is the order of the staff's list of people: the newest first,
// on users_created_idx. Not the latest sign-in first: that changes, and
// would shift the pages.
var peopleOrder = keyset{at: "u.created_at", id: "u.id", desc: true}

func peopleQuery(text string, after *portal.PageCursor, limit int) (string, []any) {
	return peopleOrder.page(`
		SELECT u.id, u.issuer, u.subject, u.email, u.email_verified, u.name, u.groups, u.role, u.created_at, u.last_login_at,
		       open.n, open.last_seen
		FROM users u,
		     LATERAL (SELECT count(*) AS n, max(us.last_seen_at) AS last_seen
		              FROM user_sessions us JOIN sessions s ON s.token = us.token_hash AND s.expiry > now()
		              WHERE us.user_id = u.id) open`,
		[]string{"($1 = '' OR strpos(lower(u.email), lower($1)) > 0 OR strpos(lower(u.name), lower($1)) > 0)"}, []any{text}, after, limit)
}

// PeoplePage returns up to limit users whose email or name holds text (all
// users when text is ""), with their open sessions, the newest first, after
// the cursor (from the newest when nil).
func (s *Store) PeoplePage(ctx context.Context, text string, after *portal.PageCursor, limit int) ([]*portal.Person, error) {
	sql, args := peopleQuery(text, after, pageLimit(limit))
	out, err := collect(func(row pgx.Row) (*portal.Person, error) {
		var p portal.Person
		u := &portal.User{}
		err := row.Scan(&u.ID, &u.Issuer, &u.Subject, &u.Email, &u.EmailVerified, &u.Name, &u.Groups,
			&u.Role, &u.CreatedAt, &u.LastLoginAt, &p.OpenSessions, &p.LastSeenAt)
		p.User = u
		return &p, err
	})(s.db.Query(ctx, sql, args...))
	return out, mapErr("people", err)
}
