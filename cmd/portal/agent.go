package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/2i2c-org/credential-portal/internal/agent"
	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// agentConfig is the configuration of `portal agent`.
type agentConfig struct {
	PortalURL *url.URL
	Cluster   string
	TokenFile string
	Base      string
	Out       string
	Listen    string
	Wait      time.Duration
	Interval  time.Duration
	LogLevel  slog.Level
}

func (c *agentConfig) settings() []setting {
	return []setting{
		{env: "PORTAL_AGENT_PORTAL_URL", flag: "portal", parse: required(urlVar(&c.PortalURL)),
			usage: "the portal's URL, e.g. https://credentials.2i2c.org"},
		{env: "PORTAL_AGENT_CLUSTER", flag: "cluster", parse: required(clusterVar(&c.Cluster)),
			usage: "this cluster's name in the portal"},
		{env: "PORTAL_AGENT_TOKEN_FILE", flag: "token-file", parse: required(fileVar(&c.TokenFile)),
			usage: "file holding the cluster's sync token; re-read at every request"},
		{env: "PORTAL_AGENT_BASE", flag: "base", parse: required(fileVar(&c.Base)),
			usage: "the cluster's own web config (internal user, TLS and HTTP settings); the portal's users are added to it"},
		{env: "PORTAL_AGENT_OUT", flag: "out", parse: required(outFileVar(&c.Out)),
			usage: "the web config file to write, which Prometheus reads with --web.config.file"},
		{env: "PORTAL_AGENT_LISTEN", flag: "listen", def: ":9100", parse: addrVar(&c.Listen),
			usage: "address serving /healthz and /metrics, host:port"},
		{env: "PORTAL_AGENT_WAIT", flag: "wait", def: "30s", parse: waitVar(&c.Wait),
			usage: fmt.Sprintf("how long the portal may hold a request until the credentials change, at most %gs", webconfig.MaxWait.Seconds())},
		{env: "PORTAL_AGENT_INTERVAL", flag: "interval", def: "5s", parse: durationVar(&c.Interval),
			usage: "least time between requests, and the first pause after a failure (pauses grow to a minute)"},
		logLevelSetting(&c.LogLevel),
	}
}

func clusterVar(p *string) func(string) error {
	return func(v string) error {
		if !portal.ValidClusterName(v) {
			return errors.New("want the cluster's name as the portal spells it: lower-case letters, digits and dashes, e.g. openscapes")
		}
		*p = v
		return nil
	}
}

// outFileVar accepts a file path in an existing folder; the file itself
// need not exist yet.
func outFileVar(p *string) func(string) error {
	return func(v string) error {
		if fi, err := os.Stat(filepath.Dir(v)); err != nil || !fi.IsDir() {
			return errors.New("want a file path in an existing folder, e.g. /etc/prometheus-web/web-config.yml")
		}
		if fi, err := os.Stat(v); err == nil && fi.IsDir() {
			return errors.New("want a file path, not a folder")
		}
		*p = v
		return nil
	}
}

func waitVar(p *time.Duration) func(string) error {
	return func(v string) error {
		var d time.Duration
		if err := durationVar(&d)(v); err != nil || d > webconfig.MaxWait {
			return fmt.Errorf("want a positive duration of at most %gs, such as 30s", webconfig.MaxWait.Seconds())
		}
		*p = d
		return nil
	}
}

func cmdAgent(ctx context.Context, e env, args []string) error {
	var cfg agentConfig
	if _, err := parseSettings("agent",
		"Keep a Prometheus web config file in step with the portal: the cluster's own web config (--base)\n"+
			"plus the portal's active credentials, written atomically to --out. Run it beside Prometheus.",
		cfg.settings(), args, e.getenv, e.stdout); err != nil {
		return err
	}
	log := applog.New(e.stderr, cfg.LogLevel)
	a, err := agent.New(agent.Config{
		PortalURL: cfg.PortalURL,
		Cluster:   cfg.Cluster,
		TokenFile: cfg.TokenFile,
		BasePath:  cfg.Base,
		OutPath:   cfg.Out,
		Wait:      cfg.Wait,
		Interval:  cfg.Interval,
	}, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (PORTAL_AGENT_LISTEN): %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("portal agent started", "addr", ln.Addr().String(), "portal", cfg.PortalURL.String(),
		"cluster", cfg.Cluster, "base", cfg.Base, "out", cfg.Out, "version", version)

	runErr := a.Run(ctx)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("health server shutdown", "error", err.Error())
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("health server: %w", err)
	}
	if runErr == nil {
		log.Info("portal agent stopped")
	}
	return runErr
}
