package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// every runs job at once and then every interval until ctx ends. The
// background jobs run on every replica: each is idempotent, or takes a lock
// so that one replica does the work at a time.
func every(ctx context.Context, interval time.Duration, job func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for ctx.Err() == nil {
		job(ctx)
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// sweepSessions deletes expired sessions; the DELETE is idempotent and
// cheap.
func sweepSessions(st *store.Store, log *slog.Logger) func(context.Context) {
	return func(ctx context.Context) {
		if n, err := st.DeleteExpiredSessions(ctx); err != nil {
			log.Warn("deleting expired sessions", "error", err.Error())
		} else if n > 0 {
			log.Debug("deleted expired sessions", "count", n)
		}
	}
}

func parseClustersFile(path string) ([]*portal.Cluster, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &configError{name: "PORTAL_CLUSTERS_FILE", given: strconv.Quote(path), want: "a readable YAML file: " + err.Error()}
	}
	defer f.Close()
	cs, err := workflow.ParseClusters(f)
	if err != nil {
		return nil, &configError{name: "PORTAL_CLUSTERS_FILE", given: strconv.Quote(path), want: err.Error()}
	}
	return cs, nil
}

// importClusters imports the clusters file once the database answers, so a
// portal started while the database is down still gets its clusters. It
// retries from a second, doubling, up to half a minute apart, until it
// succeeds or ctx ends.
func importClusters(ctx context.Context, wf *workflow.Service, path string, log *slog.Logger) {
	retry := backoff.NewExponentialBackOff()
	retry.InitialInterval, retry.MaxInterval = time.Second, 30*time.Second
	n, err := backoff.Retry(ctx, func() (int, error) { return wf.ImportClustersFile(ctx, path) },
		backoff.WithBackOff(retry), backoff.WithMaxElapsedTime(0), // until ctx ends
		backoff.WithNotify(func(err error, next time.Duration) {
			log.Warn("importing the clusters file; retrying", "file", path, "error", err.Error(),
				"retry_in", next.Round(time.Millisecond).String())
		}))
	if err == nil {
		log.Info("clusters file imported", "file", path, "changed", n)
	}
}

// remindExpiring records due expiry reminders; an advisory lock lets one
// replica do it at a time.
func remindExpiring(wf *workflow.Service, log *slog.Logger) func(context.Context) {
	return func(ctx context.Context) {
		if n, err := wf.RecordDueReminders(ctx); err != nil {
			log.Warn("recording expiry reminders", "error", err.Error())
		} else if n > 0 {
			log.Info("expiry reminders due", "count", n)
		}
	}
}
