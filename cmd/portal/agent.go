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
	"strconv"
	"strings"
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
	MaxUsers  int
	MaxBytes  int
	LogLevel  slog.Level
}

// defaultAgentListen is the agent's default address. Its port, 10095, is in
// no list of Prometheus's default port allocations: node_exporter's 9100,
// which distributions install beside Prometheus, and the rest of
// 9100–9999 are all taken, as are the core 9090–9094; 10095 also keeps
// clear of the run from 10001 up where new exporters are being added, of
// Zabbix's 10050–10051, of the kubelet and control plane's 10250–10259,
// of a Thanos sidecar's 10901–10902 and of the 8080 that Prometheus pods'
// config reloaders listen on.
const defaultAgentListen = ":10095"

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
		{env: "PORTAL_AGENT_LISTEN", flag: "listen", def: defaultAgentListen, parse: addrVar(&c.Listen),
			usage: "address serving /healthz, /readyz and /metrics, host:port"},
		{env: "PORTAL_AGENT_WAIT", flag: "wait", def: "30s", parse: waitVar(&c.Wait),
			usage: fmt.Sprintf("how long the portal may hold a request until the credentials change, at most %gs", webconfig.MaxWait.Seconds())},
		{env: "PORTAL_AGENT_INTERVAL", flag: "interval", def: "1s", parse: durationVar(&c.Interval),
			usage: "least time between requests the portal answers at once, and the first pause after a failure (pauses grow to 4s, or to this if longer)"},
		{env: "PORTAL_AGENT_MAX_USERS", flag: "max-users", def: strconv.Itoa(agent.DefaultMaxUsers), parse: intVar(&c.MaxUsers, 1, 1_000_000),
			usage: "most portal users the agent writes; an answer with more is refused and the last good file kept"},
		{env: "PORTAL_AGENT_MAX_BYTES", flag: "max-bytes", def: "1MiB", parse: byteSizeVar(&c.MaxBytes, 4<<10, 64<<20),
			usage: "largest answer from the portal, and largest file, the agent accepts; the volume holding the file needs twice this"},
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

// byteSizeVar takes a size in bytes, KiB or MiB ("1MiB", "512KiB",
// "1048576"), from lo to hi bytes.
func byteSizeVar(p *int, lo, hi int) func(string) error {
	return func(v string) error {
		want := fmt.Errorf("want a size from %dKiB to %dMiB, such as 1MiB, 512KiB or 1048576 (bytes)", lo>>10, hi>>20)
		num, unit := strings.TrimSpace(v), 1
		for suffix, u := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20} {
			if n, ok := strings.CutSuffix(num, suffix); ok {
				num, unit = strings.TrimSpace(n), u
			}
		}
		n, err := strconv.Atoi(num)
		if err != nil || n <= 0 || n > hi/unit || n*unit < lo {
			return want
		}
		*p = n * unit
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
		MaxUsers:  cfg.MaxUsers,
		MaxBytes:  cfg.MaxBytes,
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
		"cluster", cfg.Cluster, "base", cfg.Base, "out", cfg.Out, "max_users", cfg.MaxUsers, "max_bytes", cfg.MaxBytes,
		"ready_within", a.ReadyWithin().String(), "version", version)

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
