package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/server"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// serveConfig is the configuration of `portal serve`.
type serveConfig struct {
	DatabaseURL     string
	Listen          string
	MetricsListen   string
	BaseURL         *url.URL
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	OIDC            oidc.Config
	Access          portal.AccessPolicy
	Sessions        server.SessionConfig
	BcryptCost      int
	ClustersFile    string
	Notify          notifyConfig
}

func (c *serveConfig) settings() []setting {
	return append([]setting{
		{env: "DATABASE_URL", flag: "database-url", secret: true, parse: required(databaseURLVar(&c.DatabaseURL)),
			usage: "PostgreSQL connection URL"},
		{env: "PORTAL_LISTEN", flag: "listen", def: ":8080", parse: addrVar(&c.Listen),
			usage: "address to listen on, host:port"},
		{env: "PORTAL_METRICS_LISTEN", flag: "metrics-listen", parse: optional(addrVar(&c.MetricsListen)),
			usage: "address serving /metrics alone, host:port, kept off the public address; empty: /metrics is on the main address"},
		{env: "PORTAL_BASE_URL", flag: "base-url", parse: required(baseURLVar(&c.BaseURL)),
			usage: "the URL people reach the portal at, e.g. https://credentials.2i2c.org; the OIDC redirect URL is this + /auth/callback"},
		logLevelSetting(&c.LogLevel),
		{env: "PORTAL_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: "15s", parse: durationVar(&c.ShutdownTimeout),
			usage: "how long in-flight requests may take to finish on SIGTERM"},
		{env: "PORTAL_OIDC_ISSUER", flag: "oidc-issuer", parse: required(issuerVar(&c.OIDC.Issuer)),
			usage: "OIDC issuer URL, e.g. https://accounts.google.com"},
		{env: "PORTAL_OIDC_CLIENT_ID", flag: "oidc-client-id", parse: required(stringVar(&c.OIDC.ClientID)),
			usage: "OIDC client ID registered for the portal"},
		{env: "PORTAL_OIDC_CLIENT_SECRET", flag: "oidc-client-secret", secret: true, parse: stringVar(&c.OIDC.ClientSecret),
			usage: "OIDC client secret (prefer the environment: flags show in ps)"},
		{env: "PORTAL_OIDC_SCOPES", flag: "oidc-scopes", def: "openid email profile", parse: wordsVar(&c.OIDC.Scopes),
			usage: "scopes to ask for, space separated"},
		{env: "PORTAL_OIDC_GROUPS_CLAIM", flag: "oidc-groups-claim", def: "groups", parse: groupsClaimVar(&c.OIDC.GroupsClaim),
			usage: "ID token claim that lists the person's groups; none to ignore groups"},
		{env: "PORTAL_STAFF_GROUPS", flag: "staff-groups", parse: listVar(&c.Access.StaffGroups),
			usage: "groups whose members are staff, comma separated (names may hold spaces)"},
		{env: "PORTAL_STAFF_EMAIL_DOMAINS", flag: "staff-email-domains", parse: listVar(&c.Access.StaffEmailDomains),
			usage: "email domains whose verified addresses are staff, comma separated, e.g. 2i2c.org"},
		{env: "PORTAL_STAFF_EMAILS", flag: "staff-emails", parse: listVar(&c.Access.StaffEmails),
			usage: "verified email addresses that are staff, comma separated"},
		{env: "PORTAL_ALLOWED_EMAIL_DOMAINS", flag: "allowed-email-domains", parse: listVar(&c.Access.AllowedEmailDomains),
			usage: "when set, only verified addresses in these domains may sign in at all, comma separated"},
		{env: "PORTAL_BCRYPT_COST", flag: "bcrypt-cost", def: strconv.Itoa(issue.DefaultBcryptCost), parse: bcryptCostVar(&c.BcryptCost),
			usage: "bcrypt cost of issued credentials' password hashes; the passwords are 130-bit random, so a low cost keeps Prometheus's basic auth fast at no loss"},
		{env: "PORTAL_CLUSTERS_FILE", flag: "clusters-file", parse: fileVar(&c.ClustersFile),
			usage: "YAML file of clusters to create or update at start-up (see README)"},
		{env: "PORTAL_SESSION_IDLE_TIMEOUT", flag: "session-idle-timeout", def: "2h", parse: durationVar(&c.Sessions.IdleTimeout),
			usage: "sign out after this long without a request"},
		{env: "PORTAL_SESSION_LIFETIME", flag: "session-lifetime", def: "12h", parse: durationVar(&c.Sessions.Lifetime),
			usage: "sign out this long after sign-in, however active"},
	}, c.Notify.settings()...)
}

// bcryptCostVar takes a bcrypt cost the agents will accept: from bcrypt's
// least, 4, to webconfig.MaxBcryptCost. Above it every `portal agent`
// refuses the cluster's whole publication, so no new credential would work.
func bcryptCostVar(p *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < bcrypt.MinCost || n > webconfig.MaxBcryptCost {
			return fmt.Errorf("want a whole number from %d to %d: `portal agent` refuses hashes above cost %d, since Prometheus checks one hash at a time and a slow one stalls every login (the passwords are random, so the default %d loses nothing)",
				bcrypt.MinCost, webconfig.MaxBcryptCost, webconfig.MaxBcryptCost, issue.DefaultBcryptCost)
		}
		*p = n
		return nil
	}
}

// baseURLVar takes the portal's own address: scheme and host only, since
// the portal's routes and cookies live at the root of its host.
func baseURLVar(p **url.URL) func(string) error {
	check := urlVar(p)
	return func(v string) error {
		if err := check(v); err != nil {
			return err
		}
		if u := *p; u != nil && (u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil) {
			return errors.New("want the scheme and host only, for example https://credentials.2i2c.org: the portal serves from the root of its host")
		}
		return nil
	}
}

// groupsClaimVar takes a claim name; "none" turns groups off.
func groupsClaimVar(p *string) func(string) error {
	return func(v string) error {
		*p = strings.TrimSpace(v)
		if *p == "none" {
			*p = ""
		}
		return nil
	}
}

// issuerVar accepts the issuer's absolute URL, exactly as the provider
// writes it in its discovery document: go-oidc compares them byte for byte,
// and some providers (Auth0) end theirs with a slash.
func issuerVar(p *string) func(string) error {
	return func(v string) error {
		var u *url.URL
		if err := urlVar(&u)(v); err != nil || u == nil {
			return errors.New("want the issuer's absolute URL, e.g. https://accounts.google.com")
		}
		*p = v
		return nil
	}
}

func logLevelSetting(p *slog.Level) setting {
	return setting{env: "PORTAL_LOG_LEVEL", flag: "log-level", def: "info", parse: levelVar(p),
		usage: "least severe log level written: debug, info, warn or error"}
}

// baseURLFor is the URL a portal listening on addr is reached at when no
// base URL is configured.
func baseURLFor(addr string) *url.URL {
	host, port, _ := net.SplitHostPort(addr)
	switch host {
	case "", "0.0.0.0", "::", "127.0.0.1":
		host = "localhost"
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
}

func cmdServe(ctx context.Context, e env, args []string) error {
	var cfg serveConfig
	if _, err := parseSettings("serve", "Run the portal's web server.", cfg.settings(), args, e.getenv, e.stdout); err != nil {
		return err
	}
	log := applog.New(e.stderr, cfg.LogLevel)
	senders, notify, err := cfg.Notify.channels(nil, nil)
	if err != nil {
		return err
	}
	if cfg.ClustersFile != "" {
		// Checked now, so a broken file stops start-up with its reason.
		if _, err := parseClustersFile(cfg.ClustersFile); err != nil {
			return err
		}
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := checkSchema(ctx, pool, log); err != nil {
		return err
	}
	return runInstance(ctx, pool, instanceConfig{
		Listen: cfg.Listen, MetricsListen: cfg.MetricsListen, BaseURL: cfg.BaseURL, ShutdownTimeout: cfg.ShutdownTimeout, OIDC: cfg.OIDC,
		Access: cfg.Access, Sessions: cfg.Sessions, BcryptCost: cfg.BcryptCost, ClustersFile: cfg.ClustersFile,
		Notify: notify, Senders: senders,
	}, log)
}

// defaultConnectTimeout bounds each attempt to open a database connection
// when DATABASE_URL sets no connect_timeout. Without it a connection to a
// host that does not answer (a network partition, a node gone, where
// nothing refuses the connection) waits for the kernel's TCP timeout, about
// two minutes, and so does every page that needs one. Two seconds is many
// times what a healthy connection takes, even across zones with TLS, and
// short enough that a page says "the database cannot be reached" (503)
// promptly; with a refused connection (a database restarting) pages fail
// at once anyway.
const defaultConnectTimeout = 2 * time.Second

// openPool parses the database URL and makes a pool. It does not connect:
// the portal starts while the database is down and reports it in /readyz,
// and the pool makes new connections once it is back, without a restart.
// A connect_timeout in the URL wins over defaultConnectTimeout.
func openPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, &configError{name: "DATABASE_URL", given: "(hidden)", want: "not a valid PostgreSQL connection string"}
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	return pool, nil
}

// checkSchema refuses a database whose schema this binary does not expect.
// A database that cannot be reached yet is not refused: /readyz says 503
// until it can, and the portal needs no restart.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		log.Warn("database unreachable at start; serving anyway, /readyz answers 503 until it is reachable", "error", err.Error())
		return nil
	}
	st, err := store.Schema(ctx, pool)
	if err != nil {
		return err
	}
	if p := st.Problem(); p != "" {
		return errors.New(p)
	}
	return nil
}
