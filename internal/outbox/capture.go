package outbox

import (
	"context"
	"sync"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// Capture keeps messages in memory instead of sending them: `portal dev`'s
// mail, shown at /dev/mail. It keeps the newest, at most a fixed number, so
// that a long session does not grow without bound. It is safe for
// concurrent use.
type Capture struct {
	max int

	mu   sync.Mutex
	msgs []*portal.Message // newest first
}

// NewCapture returns a Capture that keeps at most n messages (at least 1).
func NewCapture(n int) *Capture {
	return &Capture{max: max(n, 1)}
}

// Send keeps a copy of m, marked sent now, dropping the oldest kept when
// there are more than the Capture's max. It never fails.
func (c *Capture) Send(_ context.Context, m *portal.Message) error {
	cp := copyMessage(m)
	now := time.Now()
	cp.Status, cp.SentAt = portal.MessageSent, &now
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append([]*portal.Message{cp}, c.msgs[:min(len(c.msgs), c.max-1)]...)
	return nil
}

// Messages returns copies of the kept messages, newest first.
func (c *Capture) Messages() []*portal.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*portal.Message, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = copyMessage(m)
	}
	return out
}

// copyMessage copies m with its pointers, so that neither copy can change
// the other.
func copyMessage(m *portal.Message) *portal.Message {
	cp := *m
	if m.UserID != nil {
		id := *m.UserID
		cp.UserID = &id
	}
	if m.SentAt != nil {
		at := *m.SentAt
		cp.SentAt = &at
	}
	return &cp
}
