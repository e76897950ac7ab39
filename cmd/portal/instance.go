package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/notify"
	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/server"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// instanceConfig is what differs between `portal serve` and `portal dev`;
// everything else about a running portal is the same for both.
type instanceConfig struct {
	Listen string
	// MetricsListen, when set, serves /metrics there alone, and not on Listen.
	MetricsListen   string
	BaseURL         *url.URL
	ShutdownTimeout time.Duration
	OIDC            oidc.Config
	Access          portal.AccessPolicy
	Sessions        server.SessionConfig
	BcryptCost      int    // 0 for issue.DefaultBcryptCost
	ClustersFile    string // imported once the database answers; "" for none
	// Notify and Senders are how people are told: the workflow's options
	// (its BaseURL is filled in here) and the outbox's senders by channel.
	Notify  workflow.NotifyOptions
	Senders map[portal.Channel]outbox.Sender
	// DevMail, in `portal dev` without a mail relay, holds the mail sent,
	// shown at /dev/mail.
	DevMail *outbox.Capture
	// Seed runs before the portal listens, with its workflow: the demo data
	// of `portal dev`.
	Seed func(context.Context, *workflow.Service) error
	// Dev and DevIdentityProvider are `portal dev`'s: the banner on every
	// page and the development sign-in under /oidc/.
	Dev                 bool
	DevIdentityProvider http.Handler
	// Listening, when set, is called once the portal accepts connections.
	Listening func(addr net.Addr)
}

// runInstance wires one portal on pool and serves it until ctx ends: the
// workflow and the HTTP server, the sign-in client, the notification hub
// that wakes the agents' long-polls and the outbox worker, the worker, and
// the background loops (sessions, reminders, expiry, the clusters file).
// Every replica runs the same. It returns once the server has shut down and
// the worker has finished the message in hand.
func runInstance(ctx context.Context, pool *pgxpool.Pool, cfg instanceConfig, log *slog.Logger) error {
	st := store.New(pool)
	cfg.Notify.BaseURL = cfg.BaseURL
	wf := workflow.New(st, workflow.Options{BcryptCost: cfg.BcryptCost, Log: log, Notify: cfg.Notify})
	if cfg.Seed != nil {
		if err := cfg.Seed(ctx, wf); err != nil {
			return err
		}
	}
	if cfg.ClustersFile != "" {
		go importClusters(ctx, wf, cfg.ClustersFile, log)
	}
	cfg.OIDC.RedirectURL = server.RedirectURL(cfg.BaseURL)
	signIn := oidc.New(cfg.OIDC, log)
	hub := notify.New(pool, log)
	go hub.Run(ctx)
	worker := outbox.NewWorker(st, cfg.Senders, outbox.Options{Wake: hub.MessagesQueued(), Log: log})
	srvCfg := server.Config{
		BaseURL: cfg.BaseURL, Dev: cfg.Dev, Version: version, Sessions: cfg.Sessions, Access: cfg.Access,
		DevIdentityProvider: cfg.DevIdentityProvider, Collectors: worker.Collectors(),
		SeparateMetrics: cfg.MetricsListen != "",
	}
	if cfg.DevMail != nil {
		srvCfg.DevMail = cfg.DevMail
	}
	srv, err := server.New(srvCfg, st, wf, signIn, hub, log)
	if err != nil {
		return err
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		worker.Run(ctx)
	}()
	defer func() { <-delivered }()
	// Sessions expire by query; their rows are swept now and then.
	go every(ctx, 5*time.Minute, log, "expired sessions deleted", st.DeleteExpiredSessions)
	// Under an advisory lock: one replica records each reminder.
	go every(ctx, 5*time.Minute, log, "expiry reminders due", wf.RecordDueReminders)
	go every(ctx, 5*time.Minute, log, "unanswered requests expired", wf.ExpireRequests)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (PORTAL_LISTEN): %w", cfg.Listen, err)
	}
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (PORTAL_METRICS_LISTEN): %w", cfg.MetricsListen, err)
		}
		log.Info("metrics listening", "addr", mln.Addr().String())
		metricsDone := make(chan struct{})
		go func() {
			defer close(metricsDone)
			if err := server.Serve(ctx, mln, srv.MetricsHandler(), cfg.ShutdownTimeout, log); err != nil {
				log.Error("metrics server stopped", "error", err.Error())
			}
		}()
		defer func() { <-metricsDone }()
	}
	// After listening: the development provider is served by this portal.
	go signIn.Run(ctx)
	log.Info("portal listening", "addr", ln.Addr().String(), "url", cfg.BaseURL.String(), "version", version)
	if cfg.Listening != nil {
		cfg.Listening(ln.Addr())
	}
	return server.Serve(ctx, ln, srv, cfg.ShutdownTimeout, log)
}
