package server

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/2i2c-org/credential-portal/internal/store"
)

// maxCachedSessions bounds the sessions a replica keeps open: past it, it
// starts again from none (a few kilobytes each).
const maxCachedSessions = 20_000

// sessionCache keeps the sessions this replica opened, with the person each
// signs in, so that a signed-in request need not read them again: the one
// statement every page view would otherwise run. It is the only state a
// replica keeps that another replica changes, so it holds a session only
//
//   - while the replica listens for changes (notify.Hub tells it; every
//     session's write or deletion, and every change to a person, is
//     notified by the triggers of migration 0010, from any replica),
//     dropping everything when the connection is lost;
//   - for SessionRefresh at most after reading it, as long as the request
//     comes from the address it was read from: the read also notes when and
//     from where the session was last seen, which the sessions pages show;
//   - until the session's own expiry.
//
// This replica's own changes drop what they change at once (drop,
// dropUser), not when their notification comes back. Another replica's
// change is seen when its notification arrives, a few milliseconds after
// the change commits.
type sessionCache struct {
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
	opened *store.OpenedSession
	ip     string    // the address it was read for
	read   time.Time // when it was read
}

func newSessionCache() *sessionCache {
	return &sessionCache{byKey: map[string]cachedSession{}, byUser: map[int64]map[string]struct{}{}, now: time.Now}
}

// get returns a copy of the session keyed key as kept for a request from
// ip, or false if it must be read.
func (c *sessionCache) get(key, ip string) (*store.OpenedSession, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok || !c.listening {
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

// begin is called before reading a session; keep, after, keeps it unless
// a drop came between.
func (c *sessionCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// keep keeps the session keyed key, read for a request from ip since
// begin returned gen. Only a session that signs someone in is kept.
func (c *sessionCache) keep(gen uint64, key, ip string, o *store.OpenedSession) {
	if o.User == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening || gen != c.gen {
		return
	}
	if len(c.byKey) >= maxCachedSessions {
		c.clearLocked()
	}
	cp := *o
	u := *o.User
	cp.User = &u
	c.byKey[key] = cachedSession{opened: &cp, ip: ip, read: c.now()}
	if c.byUser[u.ID] == nil {
		c.byUser[u.ID] = map[string]struct{}{}
	}
	c.byUser[u.ID][key] = struct{}{}
}

// drop forgets the session keyed key.
func (c *sessionCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.dropLocked(key)
}

// dropUser forgets every session of the person with id.
func (c *sessionCache) dropUser(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for key := range c.byUser[id] {
		c.dropLocked(key)
	}
}

func (c *sessionCache) dropLocked(key string) {
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

func (c *sessionCache) clearLocked() {
	c.gen++
	clear(c.byKey)
	clear(c.byUser)
}

// SessionsChanged drops what a notification of migration 0010 names:
// "s:" and a session's key, or "u:" and a person's id. Anything else drops
// everything.
func (c *sessionCache) SessionsChanged(payload string) {
	if key, ok := strings.CutPrefix(payload, "s:"); ok {
		c.drop(key)
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
func (c *sessionCache) Listening(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listening = on
	c.clearLocked()
}
