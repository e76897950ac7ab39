package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// every runs job at once and then every interval until ctx ends, and logs
// how many things it did (under did) or why it failed. The background jobs
// run on every replica: each is idempotent, or takes a lock so that one
// replica does the work at a time.
func every[N int | int64](ctx context.Context, interval time.Duration, log *slog.Logger, did string, job func(context.Context) (N, error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for ctx.Err() == nil {
		if n, err := job(ctx); err != nil && ctx.Err() == nil {
			log.Warn(did+": failed", "error", err.Error())
		} else if n > 0 {
			log.Info(did, "count", n)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
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
