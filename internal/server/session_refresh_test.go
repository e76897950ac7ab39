package server

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// sessionExpiry is when the stored session of user email expires, in Unix
// milliseconds; the user must have one session.
func (p *testPortal) sessionExpiry(email string) int {
	p.t.Helper()
	return p.count(`SELECT (extract(epoch FROM s.expiry) * 1000)::bigint
		FROM sessions s JOIN user_sessions us ON us.token_hash = s.token JOIN users u ON u.id = us.user_id
		WHERE u.email = $1`, email)
}

// TestSignedInPageViewsWriteNothing: once signed in, 30 page views within
// the refresh interval run no INSERT, UPDATE or DELETE at all, and leave
// every row of the database as it was, while each shows the person signed
// in.
func TestSignedInPageViewsWriteNothing(t *testing.T) {
	t.Parallel()
	log := &statementLog{}
	p := newPortal(t, portalOptions{tracer: log})
	p.addCluster("awi-ciroh")
	alice := p.signedIn("alice@example.org")
	before := p.rowVersions()
	log.take()
	pages := []string{"/dashboard", "/requests/new", "/sessions", "/tokens", "/"}
	for i := range 30 {
		path := pages[i%len(pages)]
		if r := alice.get(path); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "Sign out") {
			t.Fatalf("%s: %d, not signed in:\n%s", path, r.StatusCode, r.Body)
		}
	}
	ran := log.take()
	if w := ran.writes(); len(w) > 0 {
		t.Errorf("30 signed-in page views ran %d writes among %d statements:%s", len(w), len(ran), w)
	}
	if after := p.rowVersions(); after != before {
		t.Errorf("30 signed-in page views changed rows:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// TestIdleExpiryRefreshedOncePerInterval: once the refresh interval has
// passed, the next page view moves the session's expiry on with one write,
// of the session's row, and the view after it writes nothing again.
func TestIdleExpiryRefreshedOncePerInterval(t *testing.T) {
	t.Parallel()
	log := &statementLog{}
	p := newPortal(t, portalOptions{tracer: log,
		sessions: &SessionConfig{IdleTimeout: time.Hour, Lifetime: 2 * time.Hour, Refresh: time.Second}})
	alice := p.signedIn("alice@example.org")
	signedIn := p.sessionExpiry("alice@example.org")
	time.Sleep(1100 * time.Millisecond)

	log.take()
	alice.stillSignedIn("after the refresh interval")
	w := log.take().writes()
	if len(w) != 1 || !strings.Contains(w[0].SQL, "sessions") {
		t.Errorf("the first view after the interval ran %d writes, want 1 of the session:%s", len(w), w)
	}
	if refreshed := p.sessionExpiry("alice@example.org"); refreshed-signedIn < 1000 {
		t.Errorf("the session's expiry moved %d ms on, want at least the 1000 ms waited", refreshed-signedIn)
	}

	log.take()
	alice.stillSignedIn("right after the refresh")
	if w := log.take().writes(); len(w) > 0 {
		t.Errorf("the view right after the refresh wrote:%s", w)
	}
}

// TestIdleSessionSignedOut: a session kept busy outlives its idle timeout,
// through the refreshes; a session of the same person left idle ends, is
// no longer listed among their open sessions, and is signed out. Once the
// busy one is left idle too, it is signed out as well.
func TestIdleSessionSignedOut(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{sessions: &SessionConfig{IdleTimeout: 2 * time.Second, Lifetime: time.Hour, Refresh: 500 * time.Millisecond}})
	busy := p.signedIn("alice@example.org")
	idle := p.signedIn("alice@example.org")
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		busy.stillSignedIn("a busy session past its idle timeout")
		time.Sleep(250 * time.Millisecond)
	}
	if n := len(sessionRow.FindAllString(busy.get("/sessions").Body, -1)); n != 1 {
		t.Errorf("Your sessions lists %d sessions once the idle one has ended, want 1", n)
	}
	idle.signedOut("a session idle for longer than the idle timeout")
	busy.stillSignedIn("the busy session")

	time.Sleep(2200 * time.Millisecond)
	busy.signedOut("the busy session, left idle for longer than the idle timeout")
}

// TestLifetimeEndsBusySession: refreshing the idle expiry never carries a
// session past its absolute lifetime.
func TestLifetimeEndsBusySession(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{sessions: &SessionConfig{IdleTimeout: time.Hour, Lifetime: 2 * time.Second, Refresh: 200 * time.Millisecond}})
	b := p.signedIn("alice@example.org")
	end := time.Now().Add(2200 * time.Millisecond)
	for time.Now().Before(end) {
		b.get("/dashboard")
		time.Sleep(200 * time.Millisecond)
	}
	b.signedOut("a busy session past its lifetime")
}
