package server

import (
	"context"
	"sync"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// clusterCache keeps the list of open clusters the request form offers, so
// that a view of the form need not read it again: the form is a page every
// customer opens, and the list changes only when staff change a cluster.
// Like authCache, it holds the list only while the replica listens for
// changes: every statement that adds, changes or removes clusters, from any
// replica, the clusters file's import or a psql prompt, is notified by the
// trigger of migration 0012, and the list is dropped when told or when the
// connection is lost. This replica's own changes drop it at once (drop),
// not when their notification comes back.
//
// The clusters it returns are shared by every view: they are read, never
// changed.
type clusterCache struct {
	mu        sync.Mutex
	listening bool
	// gen counts the drops: a read begun before one is not kept, as it may
	// have read what the drop was for.
	gen  uint64
	open []*portal.Cluster // nil when not held
}

// get returns the list as held, or reads it with read and holds what it read
// if nothing was dropped meanwhile and the replica listens.
func (c *clusterCache) get(ctx context.Context, read func(context.Context) ([]*portal.Cluster, error)) ([]*portal.Cluster, error) {
	c.mu.Lock()
	open, gen, listening := c.open, c.gen, c.listening
	c.mu.Unlock()
	if open != nil {
		return open, nil
	}
	open, err := read(ctx)
	if err != nil || !listening {
		return open, err
	}
	if open == nil {
		open = []*portal.Cluster{} // none open is a list too
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen && c.listening {
		c.open = open
	}
	return open, nil
}

// drop forgets the list: the clusters changed.
func (c *clusterCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
}

func (c *clusterCache) dropLocked() {
	c.gen++
	c.open = nil
}

// Changed drops the list: migration 0012 notifies any change to clusters.
func (c *clusterCache) Changed(string) { c.drop() }

// Listening holds the list from now on, or drops it and holds none until
// the hub listens again.
func (c *clusterCache) Listening(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listening = on
	c.dropLocked()
}
