package server

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// unsavable is the portal's session store with saves that fail as they do
// when the database has just gone away; sessions still open.
type unsavable struct{ idleExpiry }

func (unsavable) Commit(string, []byte, time.Time) error {
	return &net.OpError{Op: "write", Net: "unix", Err: errors.New("broken pipe")}
}

// TestSessionSaveFailingAtFirstWriteAnswersWithTheErrorPageAlone: when the
// database goes away between a page's work and its session's save (made at
// the page's first write), the answer is the 503 page, not the page's own
// HTML after it.
func TestSessionSaveFailingAtFirstWriteAnswersWithTheErrorPageAlone(t *testing.T) {
	t.Parallel()
	// Every view refreshes the session's idle expiry, so every view saves it.
	p := newPortal(t, portalOptions{sessions: &SessionConfig{IdleTimeout: time.Hour, Lifetime: 2 * time.Hour, Refresh: time.Nanosecond}})
	alice := p.signedIn("alice@example.org")
	p.Server.sessions.Store = unsavable{p.Server.sessions.Store.(idleExpiry)}

	resp := alice.get("/dashboard")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dashboard with the session unsavable: %d, want 503", resp.StatusCode)
	}
	if n := strings.Count(resp.Body, "<html"); n != 1 || strings.Contains(resp.Body, "Your credentials") {
		t.Errorf("the 503 answer holds %d pages, the dashboard's among them: %v\n%s", n, strings.Contains(resp.Body, "Your credentials"), resp.Body)
	}
	if !strings.Contains(resp.Body, "cannot reach its database") {
		t.Errorf("the 503 page does not say why:\n%s", resp.Body)
	}
}
