package portal

import (
	"slices"
	"strings"
	"time"
)

// Scope is one kind of thing a personal access token may do for its owner.
type Scope string

// The scopes. decide and admin are staff's: a token holds them only while
// its owner is staff.
const (
	// ScopeRead: every GET of the API, whatever the owner may see.
	ScopeRead Scope = "read"
	// ScopeRequest: create, cancel and renew one's own requests; revoke and
	// report one's own credentials; revoke one's own tokens.
	ScopeRequest Scope = "request"
	// ScopeDecide: approve and deny requests (staff).
	ScopeDecide Scope = "decide"
	// ScopeAdmin: clusters and their sync tokens; with ScopeRequest,
	// another person's credentials and tokens (staff).
	ScopeAdmin Scope = "admin"
)

// Scopes lists every scope, in the order pages and documentation show them.
func Scopes() []Scope { return []Scope{ScopeRead, ScopeRequest, ScopeDecide, ScopeAdmin} }

// StaffOnly reports whether only staff may hold sc.
func (sc Scope) StaffOnly() bool { return sc == ScopeDecide || sc == ScopeAdmin }

// TokenPrefix starts every personal access token, so that a secret scanner
// (and a person) can tell one at a glance.
const TokenPrefix = "portal-pat-"

// Limits on tokens.
const (
	DefaultTokenDays = 90  // a token's lifetime when its maker names none
	MaxTokenDays     = 365 // the longest a token may live
	MaxActiveTokens  = 20  // the most unexpired, unrevoked tokens one person may hold
)

// TokenState is what a token is worth right now.
type TokenState string

// The token states.
const (
	TokenActive  TokenState = "active"
	TokenExpired TokenState = "expired"
	TokenRevoked TokenState = "revoked"
)

// Token is a personal access token as its owner and staff see it: never
// the token itself, nor its hash, which stay with the store.
type Token struct {
	ID         int64
	UserID     int64
	Name       string
	Scopes     []Scope
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt *time.Time // nil until first used
	LastUsedIP string     // the address of the last use
	RevokedAt  *time.Time
}

// Owner is the person the token acts for.
func (t *Token) Owner() int64 { return t.UserID }

// State is the token's state at now: revoked wins over expired.
func (t *Token) State(now time.Time) TokenState {
	switch {
	case t.RevokedAt != nil:
		return TokenRevoked
	case !now.Before(t.ExpiresAt):
		return TokenExpired
	}
	return TokenActive
}

// Allows reports whether the token lets owner do what sc covers now: the
// token must hold sc, and a staff scope counts only while owner is staff.
func (t *Token) Allows(owner *User, sc Scope) bool {
	if sc.StaffOnly() && !owner.IsStaff() {
		return false
	}
	return slices.Contains(t.Scopes, sc)
}

// ScopeList is the token's scopes as text, for pages.
func (t *Token) ScopeList() string {
	s := make([]string, len(t.Scopes))
	for i, sc := range t.Scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ", ")
}

// ParseScopes checks a list of scope names, dropping repeats and keeping
// the order of Scopes. Returns ErrInvalid naming the scopes that exist if
// one is unknown or the list is empty.
func ParseScopes(names []string) ([]Scope, error) {
	want := map[Scope]bool{}
	for _, n := range names {
		sc := Scope(strings.TrimSpace(n))
		if !slices.Contains(Scopes(), sc) {
			return nil, Invalid("scopes", "Each scope is one of read, request, decide and admin; the list holds something else.")
		}
		want[sc] = true
	}
	if len(want) == 0 {
		return nil, Invalid("scopes", "Give the token at least one scope: read, request, decide or admin.")
	}
	var out []Scope
	for _, sc := range Scopes() {
		if want[sc] {
			out = append(out, sc)
		}
	}
	return out, nil
}
