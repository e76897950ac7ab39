package portal

import "time"

// Session is one browser signed in as a person, as the person and staff see
// it: never its token, nor the token's hash, which stay with the store.
type Session struct {
	ID         int64
	UserID     int64
	CreatedAt  time.Time // when the person signed in
	LastSeenAt time.Time // the last request, to the minute
	ExpiresAt  time.Time // signed out then unless used again (idle timeout) or at the latest (lifetime)
	IP         string    // the address of the last request
	UserAgent  string    // the browser of the last request
	// Current marks the session of the browser that asks.
	Current bool
}

// Owner is the person the session signs in.
func (s *Session) Owner() int64 { return s.UserID }

// Person is a user as the staff's list of people shows them: with how many
// sessions they have open and when one was last used.
type Person struct {
	*User
	OpenSessions int
	LastSeenAt   *time.Time // nil when no session is open
}
