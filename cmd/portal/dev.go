package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/devidp"
	"github.com/2i2c-org/credential-portal/internal/loopback"
	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/pglocal"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/server"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

const devSynopsis = `Run the portal locally for development: FOR DEVELOPMENT ONLY.

With no DATABASE_URL it starts a private PostgreSQL from this machine's own
binaries, with its data in .portal-dev/ (kept between runs; --reset starts
fresh), listening on a unix socket in that folder. It migrates the schema,
seeds demo clusters and serves on PORTAL_LISTEN (loopback only).`

// devClientID is the OIDC client of the portal at its development provider.
const devClientID = "portal-dev"

// devAccess makes the demo staff identity (sam@2i2c.org, in group
// 2i2c-staff) staff, as production does with 2i2c's domain.
var devAccess = portal.AccessPolicy{StaffGroups: []string{"2i2c-staff"}, StaffEmailDomains: []string{"2i2c.org"}}

// devStaffEmail is the demo staff identity's address, where staff mail goes
// in development unless PORTAL_STAFF_NOTIFY_EMAILS says otherwise.
const devStaffEmail = "sam@2i2c.org"

// devDataDir holds the private PostgreSQL of `portal dev`.
const devDataDir = ".portal-dev"

type devConfig struct {
	DatabaseURL  string
	Listen       string
	LogLevel     slog.Level
	Reset        bool
	ClustersFile string
	Notify       notifyConfig
}

func (c *devConfig) settings() []setting {
	return append([]setting{
		{env: "DATABASE_URL", flag: "database-url", secret: true, parse: optional(databaseURLVar(&c.DatabaseURL)),
			usage: "use this PostgreSQL instead of starting a private one in " + devDataDir + "/"},
		{env: "PORTAL_LISTEN", flag: "listen", def: "127.0.0.1:8080", parse: loopbackAddrVar(&c.Listen),
			usage: "address to listen on: loopback only, since anyone reaching it can sign in as anyone"},
		logLevelSetting(&c.LogLevel),
		{flag: "reset", isBool: true, def: "false", parse: boolVar(&c.Reset),
			usage: "delete the private database in " + devDataDir + "/ and start fresh"},
		{env: "PORTAL_CLUSTERS_FILE", flag: "clusters-file", parse: fileVar(&c.ClustersFile),
			usage: "YAML file of clusters and their policies to import at start, after the demo clusters"},
	}, c.Notify.settings()...)
}

func optional(next func(string) error) func(string) error {
	return func(v string) error {
		if v == "" {
			return nil
		}
		return next(v)
	}
}

// loopbackAddrVar accepts a host:port whose host is a loopback address.
func loopbackAddrVar(p *string) func(string) error {
	check := addrVar(p)
	return func(v string) error {
		if err := check(v); err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(v)
		if !loopback.Host(host) {
			return errors.New("portal dev listens on loopback only (127.0.0.1, ::1 or localhost), for example 127.0.0.1:8080")
		}
		return nil
	}
}

func cmdDev(ctx context.Context, e env, args []string) error {
	var cfg devConfig
	if _, err := parseSettings("dev", devSynopsis, cfg.settings(), args, e.getenv, e.stdout); err != nil {
		return err
	}
	log := applog.New(e.stderr, cfg.LogLevel)
	baseURL := baseURLFor(cfg.Listen)
	if cfg.ClustersFile != "" {
		// Checked now, so a broken file stops start-up with its reason.
		if _, err := parseClustersFile(cfg.ClustersFile); err != nil {
			return err
		}
	}
	// With no mail relay set, mail stays in the process, shown at /dev/mail.
	var devMail *outbox.Capture
	if cfg.Notify.SMTPURL == "" {
		devMail = outbox.NewCapture(200)
	}
	senders, notify, err := cfg.Notify.channels(devMail, []string{devStaffEmail})
	if err != nil {
		return err
	}

	databaseURL := cfg.DatabaseURL
	if databaseURL == "" {
		pg, err := pglocal.Start(ctx, pglocal.Options{Dir: devDataDir, Reset: cfg.Reset, Logger: log})
		if err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := pg.Stop(stopCtx); err != nil {
				log.Error("stopping PostgreSQL", "error", err.Error())
			}
		}()
		if err := pg.CreateDatabase(ctx, "portal"); err != nil {
			return err
		}
		databaseURL = pg.URL("portal")
	} else if cfg.Reset {
		return fmt.Errorf("%w: --reset only applies to the private PostgreSQL; DATABASE_URL is set", errUsage)
	}

	pool, err := openPool(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool, log); err != nil {
		return err
	}

	// The development provider lives on the portal's own address, so its
	// issuer follows PORTAL_LISTEN and stays the same across restarts.
	secret := rand.Text()
	idp, err := devidp.New(baseURL.String(), devClientID, secret)
	if err != nil {
		return err
	}
	return runInstance(ctx, pool, instanceConfig{
		Listen: cfg.Listen, BaseURL: baseURL, ShutdownTimeout: 5 * time.Second,
		OIDC: oidc.Config{Issuer: idp.Issuer(), ClientID: devClientID, ClientSecret: secret,
			Scopes: []string{"openid", "email", "profile", "groups"}, GroupsClaim: "groups"},
		Access:       devAccess,
		Sessions:     server.SessionConfig{IdleTimeout: 12 * time.Hour, Lifetime: 7 * 24 * time.Hour},
		Seed:         seedDemo,
		ClustersFile: cfg.ClustersFile,
		Notify:       notify, Senders: senders, DevMail: devMail,
		Dev: true, DevIdentityProvider: idp.Handler(),
		Listening: func(net.Addr) {
			fmt.Fprintf(e.stdout, "\nDEVELOPMENT MODE: demo data and a built-in sign-in; not for production.\nPortal at %s  (Ctrl-C to stop)\n\n", baseURL)
		},
	}, log)
}

// seedDemo adds the demo clusters, one for each kind of policy: one staff
// approval, two (awi-ciroh), and approval at once for verified
// @earthscope.org addresses (earthscope). It runs at every start and
// changes nothing the second time.
func seedDemo(ctx context.Context, wf *workflow.Service) error {
	demo := []*portal.Cluster{
		{Name: "2i2c", DisplayName: "2i2c shared cluster", PrometheusURL: "https://prometheus.pilot.2i2c.cloud",
			CredentialTTLDays: portal.DefaultCredentialTTLDays, Enabled: true, Policy: portal.DefaultPolicy(),
			Note: "One credential covers every hub on this shared cluster."},
		{Name: "awi-ciroh", DisplayName: "AWI-CIROH", PrometheusURL: "https://prometheus.ciroh.awi.2i2c.cloud",
			CredentialTTLDays: portal.DefaultCredentialTTLDays, Enabled: true,
			Policy: portal.Policy{ApprovalsRequired: 2, MaxTTLDays: 180}},
		{Name: "earthscope", DisplayName: "EarthScope", PrometheusURL: "https://prometheus.earthscope.2i2c.cloud",
			CredentialTTLDays: portal.DefaultCredentialTTLDays, Enabled: true,
			Policy: portal.Policy{AutoApproveEmailDomains: []string{"earthscope.org"}, ApprovalsRequired: 1, RequestTTLDays: 7}},
	}
	if _, err := wf.ImportClusters(ctx, demo); err != nil {
		return fmt.Errorf("seed demo clusters: %w", err)
	}
	return nil
}
