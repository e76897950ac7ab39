package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/2i2c-org/credential-portal/internal/store"
)

// sweepSessions deletes expired sessions every few minutes until ctx ends.
// Every replica may do it: the DELETE is idempotent and cheap.
func sweepSessions(ctx context.Context, st *store.Store, log *slog.Logger) {
	tick := time.NewTicker(5 * time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n, err := st.DeleteExpiredSessions(ctx); err != nil {
				log.Warn("deleting expired sessions", "error", err.Error())
			} else if n > 0 {
				log.Debug("deleted expired sessions", "count", n)
			}
		}
	}
}
