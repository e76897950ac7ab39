package server

import (
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// maxCachedSessions bounds the sessions and tokens a replica keeps: past it, it
// starts again from none (a few kilobytes each).
const maxCachedSessions = 20_000

// authCache keeps the sessions this replica opened, with the person each
// signs in, so that a signed-in request need not read them again: the one
// statement every page view would otherwise run; and likewise the API
// tokens it checked, with their owners. Another replica may change what it
// keeps (as with clusterCache, the only other such state), so it holds a
// session or a token only
//
//   - while the replica listens for changes (notify.Hub tells it; every
//     session's write or deletion, every change to a person, and every
//     revocation or deletion of a token, is notified by the triggers of
//     migrations 0010 and 0011, from any replica), dropping everything when
//     the connection is lost;
//   - for SessionRefresh at most after its use was last noted, as long as
//     the request comes from the address it was noted for: the read notes
//     when and from where the session was last seen, or the token last used
//     (at most once a minute from one address), which the sessions and
//     tokens pages show;
//   - until the session's or the token's own expiry.
//
// A token is kept under "t:" and its hash in hex (tokenKey), which no
// session's key can be: scs's keys are base64url.
//
// This replica's own changes drop what they change at once (drop,
// dropUser), not when their notification comes back. Another replica's
// change is seen when its notification arrives, a few milliseconds after
// the change commits.
type authCache struct {
	mu        sync.Mutex
	listening bool
	// gen counts the drops: a read begun before one is not kept, as it may
	// have read what the drop was for.
	gen    uint64
	byKey  map[string]cachedSession
	byUser map[int64]map[string]struct{}
	now    func() time.Time
}

type cachedSession struct {
	opened *store.OpenedSession // a token's: its owner and its expiry only
	token  *portal.Token        // for a token
	ip     string               // the address it was read for
	read   time.Time            // when its use was last noted
}

// tokenKey is what the API token whose store.TokenHash is hash is kept
// under, as migration 0011's notifications name it.
func tokenKey(hash []byte) string { return "t:" + hex.EncodeToString(hash) }

func newAuthCache() *authCache {
	return &authCache{byKey: map[string]cachedSession{}, byUser: map[int64]map[string]struct{}{}, now: time.Now}
}

// get returns a copy of the session keyed key as kept for a request from
// ip, or false if it must be read.
func (c *authCache) get(key, ip string) (*store.OpenedSession, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok || !c.listening || e.token != nil {
		return nil, false
	}
	now := c.now()
	if e.ip != ip || now.Sub(e.read) >= SessionRefresh || !now.Before(e.opened.Expiry) {
		return nil, false
	}
	// Each request its own copy: nothing a request does to its session or
	// its person reaches another's.
	o := *e.opened
	u := *o.User
	o.User = &u
	return &o, true
}

// getToken returns copies of the token whose hash is hash and its owner, as
// kept for a request from ip, or false if they must be read. A hash is
// looked up, never the token: the time a lookup takes tells nothing of
// tokens.
func (c *authCache) getToken(hash []byte, ip string) (*portal.Token, *portal.User, bool) {
	key := tokenKey(hash)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok || !c.listening || e.token == nil {
		return nil, nil, false
	}
	now := c.now()
	if e.ip != ip || now.Sub(e.read) >= SessionRefresh || !now.Before(e.opened.Expiry) {
		return nil, nil, false
	}
	t, u := *e.token, *e.opened.User
	return &t, &u, true
}

// keepToken keeps token t, owned by u, checked for a request from ip since
// begin returned gen; noted is when its use was last written down.
func (c *authCache) keepToken(gen uint64, hash []byte, ip string, t *portal.Token, u *portal.User, noted time.Time) {
	cu, ct := *u, *t
	c.keepEntry(gen, tokenKey(hash), cachedSession{opened: &store.OpenedSession{User: &cu, Expiry: t.ExpiresAt}, token: &ct,
		ip: ip, read: noted})
}

// begin is called before reading a session; keep, after, keeps it unless
// a drop came between.
func (c *authCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// keep keeps the session keyed key, read for a request from ip since
// begin returned gen. Only a session that signs someone in is kept.
func (c *authCache) keep(gen uint64, key, ip string, o *store.OpenedSession) {
	if o.User == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening || gen != c.gen {
		return
	}
	cp := *o
	u := *o.User
	cp.User = &u
	c.keepLocked(key, cachedSession{opened: &cp, ip: ip, read: c.now()})
}

// keepEntry keeps e under key unless a drop came since gen.
func (c *authCache) keepEntry(gen uint64, key string, e cachedSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening || gen != c.gen {
		return
	}
	c.keepLocked(key, e)
}

func (c *authCache) keepLocked(key string, e cachedSession) {
	if len(c.byKey) >= maxCachedSessions {
		c.clearLocked()
	}
	c.byKey[key] = e
	id := e.opened.User.ID
	if c.byUser[id] == nil {
		c.byUser[id] = map[string]struct{}{}
	}
	c.byUser[id][key] = struct{}{}
}

// drop forgets the session keyed key.
func (c *authCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.dropLocked(key)
}

// dropUser forgets every session of the person with id.
func (c *authCache) dropUser(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for key := range c.byUser[id] {
		c.dropLocked(key)
	}
}

func (c *authCache) dropLocked(key string) {
	e, ok := c.byKey[key]
	if !ok {
		return
	}
	delete(c.byKey, key)
	if keys := c.byUser[e.opened.User.ID]; keys != nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(c.byUser, e.opened.User.ID)
		}
	}
}

func (c *authCache) clearLocked() {
	c.gen++
	clear(c.byKey)
	clear(c.byUser)
}

// Changed drops what a notification of migrations 0010 and 0011
// names: "s:" and a session's key, "t:" and a token's hash (its key), or
// "u:" and a person's id. Anything else drops everything.
func (c *authCache) Changed(payload string) {
	if key, ok := strings.CutPrefix(payload, "s:"); ok {
		c.drop(key)
		return
	}
	if strings.HasPrefix(payload, "t:") {
		c.drop(payload)
		return
	}
	if v, ok := strings.CutPrefix(payload, "u:"); ok {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			c.dropUser(id)
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

// Listening keeps sessions from now on, or drops them all and keeps none
// until the hub listens again.
func (c *authCache) Listening(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listening = on
	c.clearLocked()
}
