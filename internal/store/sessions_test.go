package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// newSession stores a session row as scs's pgxstore does, keyed by the
// token's SessionKey, expiring at expiry, and returns the key.
func newSession(t *testing.T, s *Store, token string, expiry time.Time) string {
	t.Helper()
	key := SessionKey(token)
	if _, err := s.db.Exec(t.Context(), `INSERT INTO sessions (token, data, expiry) VALUES ($1, '\x00', $2)`, key, expiry); err != nil {
		t.Fatalf("session %s: %v", token, err)
	}
	return key
}

func TestSessionKey(t *testing.T) {
	t.Parallel()
	// scs's own HashTokenInStore would store this for the same token; the
	// portal's key is the same SHA-256, base64url without padding.
	if got, want := SessionKey("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"; got != want {
		t.Errorf("SessionKey(abc) = %q, want %q", got, want)
	}
}

// TestSessionsOfAUser: a sign-in's record makes the session findable by its
// user, listed with the asking browser's marked; ending one or all of them
// signs them out, and someone else's are untouched.
func TestSessionsOfAUser(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
	hour := time.Now().Add(time.Hour)
	laptop, phone, theirs := newSession(t, s, "laptop", hour), newSession(t, s, "phone", hour), newSession(t, s, "staff", hour)
	for _, rec := range []struct {
		key  string
		user *portal.User
	}{{laptop, alice}, {phone, alice}, {theirs, staff}} {
		if err := s.CreateUserSession(ctx, rec.key, rec.user.ID, "192.0.2.1", "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateUserSession(ctx, laptop, alice.ID, "192.0.2.1", "test"); !errors.Is(err, portal.ErrConflict) {
		t.Errorf("recording a session twice: %v, want ErrConflict", err)
	}
	if err := s.CreateUserSession(ctx, SessionKey("never stored"), alice.ID, "", ""); !errors.Is(err, portal.ErrInvalid) {
		t.Errorf("recording a session that is not stored: %v, want ErrInvalid", err)
	}

	ss, err := s.UserSessionsPage(ctx, alice.ID, laptop, nil, 100)
	if err != nil || len(ss) != 2 {
		t.Fatalf("Alice's sessions: %d, %v; want 2", len(ss), err)
	}
	for _, sess := range ss {
		if sess.UserID != alice.ID || sess.IP != "192.0.2.1" || sess.UserAgent != "test" || sess.ExpiresAt.Before(time.Now()) {
			t.Errorf("session %+v", sess)
		}
	}
	if n := countCurrent(ss); n != 1 {
		t.Errorf("%d sessions marked current, want the laptop's", n)
	}
	if o, err := s.OpenSession(ctx, phone, "198.51.100.7", "phone browser"); err != nil || o.User == nil || o.User.ID != alice.ID || o.User.Email != alice.Email || len(o.Data) == 0 {
		t.Errorf("OpenSession of the phone: %+v, %v; want Alice's, with its data", o, err)
	}
	// A new address is noted at once, whatever the minute.
	seen := s.sessionByKey(t, phone, alice.ID)
	if seen.IP != "198.51.100.7" || seen.UserAgent != "phone browser" {
		t.Errorf("the phone's session after a request from a new address: %+v", seen)
	}

	if err := s.EndSession(ctx, seen.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenSession(ctx, phone, "", ""); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("OpenSession of an ended session: %v, want ErrNotFound", err)
	}
	wantNotFound(t, []call{
		{"EndSession", func() error { return s.EndSession(ctx, seen.ID) }},
		{"SessionByID", func() error { _, err := s.SessionByID(ctx, seen.ID, ""); return err }},
	})
	if n, err := s.EndUserSessions(ctx, alice.ID); err != nil || n != 1 {
		t.Errorf("EndUserSessions: %d, %v; want the laptop's 1", n, err)
	}
	if ss, err := s.UserSessionsPage(ctx, alice.ID, "", nil, 100); err != nil || len(ss) != 0 {
		t.Errorf("after ending all: %d sessions, %v", len(ss), err)
	}
	if o, err := s.OpenSession(ctx, theirs, "", ""); err != nil || o.User == nil || o.User.ID != staff.ID {
		t.Errorf("another user's session after Alice's were ended: %+v, %v", o, err)
	}
	var rows int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE token IN ($1, $2)`, laptop, phone).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d of Alice's session rows remain (%v)", rows, err)
	}
}

func countCurrent(ss []*portal.Session) int {
	n := 0
	for _, s := range ss {
		if s.Current {
			n++
		}
	}
	return n
}

// sessionByKey is the open session keyed key of userID's.
func (s *Store) sessionByKey(t *testing.T, key string, userID int64) *portal.Session {
	t.Helper()
	ss, err := s.UserSessionsPage(t.Context(), userID, key, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, sess := range ss {
		if sess.Current {
			return sess
		}
	}
	t.Fatalf("no open session keyed %s", key)
	return nil
}

// TestExpiredSessionsTakeTheirRecords: the background loop's sweep of
// expired sessions deletes their records too, and lists show none of them
// in the meantime.
func TestExpiredSessionsTakeTheirRecords(t *testing.T) {
	ctx, s := start(t)
	_, alice := people(t, s)
	live, expired := newSession(t, s, "live", time.Now().Add(time.Hour)), newSession(t, s, "expired", time.Now().Add(-time.Minute))
	for _, key := range []string{live, expired} {
		if err := s.CreateUserSession(ctx, key, alice.ID, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if ss, err := s.UserSessionsPage(ctx, alice.ID, "", nil, 100); err != nil || len(ss) != 1 {
		t.Errorf("before the sweep: %d open sessions, %v; want the live one", len(ss), err)
	}
	ps, err := s.PeoplePage(ctx, "alice", nil, 10)
	if err != nil || len(ps) != 1 || ps[0].OpenSessions != 1 || ps[0].LastSeenAt == nil {
		t.Errorf("People: %+v, %v; want Alice with 1 open session", ps, err)
	}
	if n, err := s.DeleteExpiredSessions(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredSessions: %d, %v", n, err)
	}
	var records int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM user_sessions`).Scan(&records); err != nil || records != 1 {
		t.Errorf("%d session records after the sweep, want the live session's (%v)", records, err)
	}
}

// TestMigrationDeletesPlaintextSessions: sessions stored before migration
// 6, keyed by their plaintext token, are gone after it; nothing a backup
// taken before it holds opens a session afterwards. Down and up again works.
func TestMigrationDeletesPlaintextSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, poolConfig(t, pgtest.Empty(t)))
	p, err := provider(pool, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ('plaintext-token', '\x00', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatalf("migration 6: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d sessions after migration 6 (%v), want none", n, err)
	}
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("migration 6 down: %v", err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

// TestOpenSessionOfNobody: a session without a record (a sign-in under way)
// opens with its data and no user; an expired one does not open.
func TestOpenSessionOfNobody(t *testing.T) {
	ctx, s := start(t)
	signingIn := newSession(t, s, "signing in", time.Now().Add(time.Hour))
	if o, err := s.OpenSession(ctx, signingIn, "192.0.2.1", "test"); err != nil || o.User != nil || len(o.Data) != 1 {
		t.Errorf("OpenSession of a session signing in nobody: %+v, %v; want its data and no user", o, err)
	}
	_, alice := people(t, s)
	gone := newSession(t, s, "expired", time.Now().Add(-time.Second))
	if err := s.CreateUserSession(ctx, gone, alice.ID, "192.0.2.1", "test"); err != nil {
		t.Fatal(err)
	}
	if o, err := s.OpenSession(ctx, gone, "192.0.2.1", "test"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("OpenSession of an expired session: %+v, %v; want ErrNotFound", o, err)
	}
}
