// Package notify carries PostgreSQL notifications to what waits for them:
// one LISTEN connection per replica fans out "cluster N's credentials
// changed" to every long-poll of that cluster, "messages were written" to
// the replica's outbox worker, "this session or person changed" to the
// replica's cache of open sessions, and "the clusters changed" to its list
// of open clusters, whichever replica made the change.
package notify

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"
)

// Channel is the notification channel the credentials trigger (migration
// 0002) notifies, with the cluster's ID as payload.
const Channel = "credentials_changed"

// MessagesChannel is the notification channel the messages trigger
// (migration 0004) notifies when messages are written.
const MessagesChannel = "messages_queued"

// SessionsChannel is the notification channel the sessions triggers
// (migration 0010) notify when a session or the person it signs in changes.
const SessionsChannel = "sessions_changed"

// ClustersChannel is the notification channel the clusters trigger
// (migration 0012) notifies when a statement adds, changes or removes
// clusters, with an empty payload.
const ClustersChannel = "clusters_changed"

// Watcher is told of every notification on the channel it watches, and of
// whether it is told: a cache may hold what the channel speaks of only
// while the connection listens, since a change made while it is down is
// never told.
type Watcher interface {
	// Changed is called with each notification's payload.
	Changed(payload string)
	// Listening is called with true once the connection listens (again),
	// and with false when it is lost or the hub stops.
	Listening(bool)
}

// watched are the channels a Watcher may watch.
var watched = []string{SessionsChannel, ClustersChannel}

// Hub dispatches credential changes to subscribers. Its zero value is not
// usable; call New.
type Hub struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}

	queued chan struct{} // one pending "messages were written"

	watchMu   sync.Mutex
	watchers  map[string]Watcher // by channel
	listening map[string]bool    // by channel
}

// New returns a Hub listening through connections from pool.
func New(pool *pgxpool.Pool, log *slog.Logger) *Hub {
	return &Hub{pool: pool, log: log, subs: make(map[int64]map[chan struct{}]struct{}), queued: make(chan struct{}, 1),
		watchers: map[string]Watcher{}, listening: map[string]bool{}}
}

// Run listens until ctx ends, reconnecting after a lost connection. Each
// (re)connection wakes every subscriber, since notifications sent while the
// connection was down are lost and waiters must look again.
func (h *Hub) Run(ctx context.Context) {
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			c, err := h.pool.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			// The listener keeps the connection; take it out of the pool.
			return c.Hijack(), nil
		},
		LogError: func(ctx context.Context, err error) {
			// Whatever the error, notifications may have been missed.
			h.stopListening()
			if ctx.Err() != nil {
				return // shutting down
			}
			h.log.WarnContext(ctx, "listening for credential changes", "error", err.Error())
		},
		ReconnectDelay: 2 * time.Second,
	}
	l.Handle(Channel, backlog{h})
	l.Handle(MessagesChannel, pgxlisten.HandlerFunc(func(context.Context, *pgconn.Notification, *pgx.Conn) error {
		signal(h.queued)
		return nil
	}))
	for _, channel := range watched {
		l.Handle(channel, watch{h, channel})
	}
	_ = l.Listen(ctx) // returns only when ctx ends
	h.stopListening()
}

// Watch tells w of every notification on channel (SessionsChannel or
// ClustersChannel) from now on, and at once whether the hub listens to it.
// One watcher per channel; a second replaces the first.
func (h *Hub) Watch(channel string, w Watcher) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	h.watchers[channel] = w
	w.Listening(h.listening[channel])
}

func (h *Hub) setListening(channel string, on bool) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	h.listening[channel] = on
	if w := h.watchers[channel]; w != nil {
		w.Listening(on)
	}
}

// stopListening tells every watcher that its channel is no longer heard.
func (h *Hub) stopListening() {
	for _, channel := range watched {
		h.setListening(channel, false)
	}
}

// watch handles a watched channel: each notification, and on each
// (re)connect, once the channel is listened to, the news that it is.
type watch struct {
	h       *Hub
	channel string
}

func (w watch) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	w.h.watchMu.Lock()
	defer w.h.watchMu.Unlock()
	if watcher := w.h.watchers[w.channel]; watcher != nil {
		watcher.Changed(n.Payload)
	}
	return nil
}

func (w watch) HandleBacklog(context.Context, string, *pgx.Conn) error {
	w.h.setListening(w.channel, true)
	return nil
}

// backlog handles the notifications and, on each (re)connect, the backlog.
type backlog struct{ h *Hub }

func (b backlog) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	id, err := strconv.ParseInt(n.Payload, 10, 64)
	if err != nil {
		return nil // not ours to understand; nothing to wake
	}
	b.h.wake(id)
	return nil
}

func (b backlog) HandleBacklog(context.Context, string, *pgx.Conn) error {
	b.h.wakeAll()
	signal(b.h.queued) // messages written while the connection was down
	return nil
}

// MessagesQueued receives a value when messages may have been written to
// the outbox, for the replica's one outbox worker.
func (h *Hub) MessagesQueued() <-chan struct{} { return h.queued }

// Subscribe returns a channel that receives a value when cluster's
// credentials may have changed, and a function to unsubscribe. A wake-up
// is never blocked on: the channel holds one pending signal.
func (h *Hub) Subscribe(cluster int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[cluster] == nil {
		h.subs[cluster] = make(map[chan struct{}]struct{})
	}
	h.subs[cluster][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[cluster], ch)
		if len(h.subs[cluster]) == 0 {
			delete(h.subs, cluster)
		}
		h.mu.Unlock()
	}
}

func (h *Hub) wake(cluster int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[cluster] {
		signal(ch)
	}
}

func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for ch := range subs {
			signal(ch)
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
