// Package agent keeps a Prometheus web config file in step with the portal:
// it long-polls the portal for a cluster's active credentials, merges them
// into the cluster's own base web config (which keeps 2i2c's internal user),
// checks the result as exporter-toolkit will read it, and writes it
// atomically to the file Prometheus reads on every request. When the portal
// is unreachable, answers nonsense, or answers what would stall or bloat
// Prometheus (a costly bcrypt hash, too many users or bytes), the last good
// file stays, with one exception enforced locally: a portal user whose
// expiry (published by the portal and kept in the file's markers) has passed
// is dropped from the file at that moment, portal or no portal.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// FileMode is the mode of the written web config. Prometheus often runs as
// another user than the agent (the chart's default is nobody, 65534), and a
// file it cannot read makes every request fail; the file holds usernames
// and bcrypt hashes, no password, and in a pod it sits on a volume only the
// pod's containers mount. 0640 with a shared group (the pod's fsGroup) is
// tighter where the deployment guarantees that group.
const FileMode fs.FileMode = 0o644

// maxRetryPause is the longest pause between two failed rounds, jitter
// included, unless Config.Interval is longer. It is short because a portal
// that comes back (a restart, a rolling update) must find its agents in
// step within 5 s, and because a retry is cheap: 30 clusters retrying every
// 4 s make 8 requests a second, which a portal that is down does not
// notice and one that is up serves at once.
const maxRetryPause = 4 * time.Second

// backoffJitter is how far, as a fraction either way, a pause after a
// failure strays from its nominal length, so that clusters do not return to
// the portal in step.
const backoffJitter = 0.5

// watchEvery is how often the agent looks at the stat of the token and base
// files while it waits on the portal or pauses, so that a rotated Secret
// takes effect within a second or two rather than at the next round, up to
// Config.Wait away. Polling the stat, rather than subscribing to file
// events, sees through Kubernetes' swap of a Secret volume's symlinks, which
// changes no watched file.
const watchEvery = time.Second

// DefaultMaxUsers is Config.MaxUsers when it is not set: some fifty times
// the largest cluster 2i2c runs, and few enough that exporter-toolkit's
// cache of 100 bcrypt checks and one-at-a-time hashing stay usable.
const DefaultMaxUsers = 5000

// DefaultMaxBytes is Config.MaxBytes when it is not set. A portal user takes
// about 120 bytes of the file (name, hash, marker with its expiry), so
// DefaultMaxUsers fill some 600 KB of it, beside a base of a few hundred
// bytes; a volume holding the file needs twice this, since the old file and
// the new one exist side by side until the rename.
const DefaultMaxBytes = 1 << 20

// Config is what an Agent needs to know.
type Config struct {
	// PortalURL is the portal's base URL, e.g. https://credentials.2i2c.org.
	PortalURL *url.URL
	// Cluster is the cluster's name in the portal.
	Cluster string
	// TokenFile holds the cluster's sync token. It is read at every request
	// and watched meanwhile, so a rotated Kubernetes secret is picked up
	// without a restart, within a second or two.
	TokenFile string
	// BasePath is the cluster's own web config, watched like TokenFile.
	BasePath string
	// OutPath is the web config Prometheus reads (--web.config.file).
	OutPath string
	// Wait is how long the portal may hold a request before answering 304;
	// at most webconfig.MaxWait.
	Wait time.Duration
	// Interval is the least time between two requests the portal answers
	// at once, and the first pause after a failure; pauses about double,
	// jittered, up to 4 s (or Interval, if longer).
	Interval time.Duration
	// MaxUsers bounds the portal users the agent writes: an answer with
	// more is refused, and the last good file stays. 0 means
	// DefaultMaxUsers.
	MaxUsers int
	// MaxBytes bounds, in bytes, the portal's answer and the file the agent
	// writes: a larger one is refused, and the last good file stays. 0
	// means DefaultMaxBytes.
	MaxBytes int
	// Client makes the requests; nil means a client that follows no
	// redirect (a sync endpoint has no reason to redirect, and a login page
	// is better reported as the 302 it is).
	Client *http.Client
}

// Agent syncs one cluster's web config. Build it with New, then call Run
// once; Handler may be served meanwhile.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	client   *http.Client
	endpoint string

	// Touched only by Run's goroutine.
	base       *webconfig.WebConfig
	baseRaw    []byte
	badBaseRaw []byte             // a changed base already reported as invalid
	users      webconfig.Users    // the portal's users as last applied, none expired
	expires    webconfig.Expiries // their known expiries
	etag       string
	retry      *backoff.ExponentialBackOff // pauses after failed rounds
	// expiry fires when the next of users expires; stopped when none has
	// a known expiry.
	expiry *time.Timer
	// watch ticks every watchEvery while Run waits, to look at the files.
	watch *time.Ticker
	// The stat of the base and token files when last read; nil for a file
	// that could not be stat'ed.
	baseStamp, tokenStamp fs.FileInfo
	sentToken             string // the token of the latest request; never logged

	written atomic.Bool
	state   roundState
	m       metrics
}

// roundState is how the latest rounds with the portal ended, for /readyz,
// which reads it from another goroutine than Run's.
type roundState struct {
	mu      sync.Mutex
	success time.Time // the end of the latest successful round
	failure time.Time // the end of the latest failed round
	err     string    // why it failed; holds no secret, like every error here
}

func (s *roundState) succeeded(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.success = at
}

func (s *roundState) failed(at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure, s.err = at, err.Error()
}

func (s *roundState) get() (success, failure time.Time, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.success, s.failure, s.err
}

type metrics struct {
	reg          *prometheus.Registry
	lastSuccess  prometheus.Gauge
	failures     prometheus.Counter
	refused      *prometheus.CounterVec
	users        prometheus.Gauge
	writes       prometheus.Counter
	baseFailures prometheus.Counter
}

// The reasons of portal_agent_publications_refused_total.
const (
	refusedCost  = "bcrypt_cost"
	refusedUsers = "users"
	refusedBytes = "bytes"
)

// refusal is an answer from the portal that is well formed but beyond one
// of the agent's limits, so the agent does not write it. reason labels
// portal_agent_publications_refused_total.
type refusal struct {
	reason, msg string
}

func (r *refusal) Error() string { return r.msg }

// New checks cfg and reads the base web config. It returns an error naming
// the file and the problem when the base cannot be read or is not a valid
// web config (see ParseWebConfig); the agent must not start then, since it
// could only write a file Prometheus refuses, or none.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	switch {
	case cfg.PortalURL == nil || cfg.PortalURL.Host == "":
		return nil, errors.New("agent: the portal URL is not set")
	case cfg.Cluster == "":
		return nil, errors.New("agent: the cluster is not set")
	case cfg.TokenFile == "":
		return nil, errors.New("agent: the token file is not set")
	case cfg.OutPath == "":
		return nil, errors.New("agent: the output file is not set")
	case cfg.Wait <= 0 || cfg.Wait > webconfig.MaxWait:
		return nil, fmt.Errorf("agent: wait %s: want more than 0 and at most %s", cfg.Wait, webconfig.MaxWait)
	case cfg.Interval <= 0:
		return nil, fmt.Errorf("agent: interval %s: want more than 0", cfg.Interval)
	case cfg.MaxUsers < 0:
		return nil, fmt.Errorf("agent: max users %d: want 0 (the default) or more", cfg.MaxUsers)
	case cfg.MaxBytes < 0:
		return nil, fmt.Errorf("agent: max bytes %d: want 0 (the default) or more", cfg.MaxBytes)
	}
	if cfg.MaxUsers == 0 {
		cfg.MaxUsers = DefaultMaxUsers
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	baseStamp := stampOf(cfg.BasePath)
	raw, err := os.ReadFile(cfg.BasePath)
	if err != nil {
		return nil, fmt.Errorf("base web config: %w", err)
	}
	base, err := parseBase(raw, cfg)
	if err != nil {
		return nil, fmt.Errorf("base web config %s: %w", cfg.BasePath, err)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	a := &Agent{
		cfg:       cfg,
		log:       log,
		client:    client,
		endpoint:  cfg.PortalURL.JoinPath(webconfig.PublicationPath(cfg.Cluster)).String(),
		base:      base,
		baseRaw:   raw,
		baseStamp: baseStamp,
		retry:     newRetry(cfg.Interval),
		expiry:    time.NewTimer(time.Hour),
		m:         newMetrics(),
	}
	a.expiry.Stop()
	if cfg.PortalURL.Scheme == "http" {
		log.Warn("the portal URL is plain http: the sync token crosses the network unencrypted", "portal", cfg.PortalURL.String())
	}
	return a, nil
}

// parseBase reads raw as the base web config of an agent configured by cfg.
// A base larger than the file the agent may write is refused here, where
// the operator reads the error, rather than as every merge it would fail.
func parseBase(raw []byte, cfg Config) (*webconfig.WebConfig, error) {
	if len(raw) > cfg.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d the agent may write (PORTAL_AGENT_MAX_BYTES), with no room left for the portal's users",
			webconfig.ErrInvalid, len(raw), cfg.MaxBytes)
	}
	base, err := webconfig.ParseWebConfig(raw)
	if err != nil {
		return nil, err
	}
	if err := checkTLSPaths(base, cfg.BasePath, cfg.OutPath); err != nil {
		return nil, err
	}
	return base, nil
}

// checkTLSPaths refuses relative TLS file paths in a base that is written
// to another folder: exporter-toolkit resolves them against the folder of
// the file Prometheus reads, so they would point elsewhere once merged.
func checkTLSPaths(base *webconfig.WebConfig, basePath, out string) error {
	baseDir, err1 := filepath.Abs(filepath.Dir(basePath))
	outDir, err2 := filepath.Abs(filepath.Dir(out))
	if err1 == nil && err2 == nil && baseDir == outDir {
		return nil
	}
	for key, path := range base.TLSFiles() {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("%w: tls_server_config: %s %q is relative, and Prometheus would look for it beside %s: write an absolute path",
				webconfig.ErrInvalid, key, path, out)
		}
	}
	return nil
}

func newMetrics() metrics {
	m := metrics{
		reg: prometheus.NewRegistry(),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portal_agent_last_success_timestamp_seconds",
			Help: "When the portal last answered with a valid document or 304, in Unix seconds."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "portal_agent_sync_failures_total",
			Help: "Rounds that did not bring the web config in step with the portal: unreachable, refused, an invalid answer, or a failed write."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portal_agent_publications_refused_total",
			Help: "Answers from the portal the agent would not write, by the limit they exceed: bcrypt_cost (a hash above cost 12), users, or bytes; the last good file stayed."},
			[]string{"reason"}),
		users: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portal_agent_users",
			Help: "Portal users in the written web config."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "portal_agent_writes_total",
			Help: "Times the web config file was replaced."}),
		baseFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "portal_agent_base_reload_failures_total",
			Help: "Times the base web config changed on disk but could not be used; the previous base stays in force."}),
	}
	for _, reason := range []string{refusedCost, refusedUsers, refusedBytes} {
		m.refused.WithLabelValues(reason) // shown at 0, so an alert on an increase sees the first
	}
	m.reg.MustRegister(m.lastSuccess, m.failures, m.refused, m.users, m.writes, m.baseFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the agent's status and metrics:
//
//   - /healthz, the liveness of the agent: 200 once the web config file
//     holds what the agent means it to (written, or found already so), 503
//     before. It stays 200 while the portal is away or refuses the token,
//     because the file, with the base's internal user, still serves
//     Prometheus; restarting the agent would mend nothing.
//   - /readyz, whether the file is in step with the portal: 200 when the
//     latest round with the portal succeeded and ended less than
//     ReadyWithin ago, 503 otherwise; the body says when the last round
//     succeeded and, if a later one failed, when and why. It is for people
//     and alerts, not for a pod's readinessProbe: a sidecar that is not
//     ready takes the whole Prometheus pod out of its Service, and so
//     locks out the internal user too, for a portal outage that Prometheus
//     itself rides out.
//   - /metrics, from the agent's own registry.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !a.written.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "web config not written yet")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ready, msg := a.readiness(time.Now())
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, msg)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{}))
	return mux
}

// ReadyWithin is how recently the latest successful round must have ended
// for /readyz to answer 200: twice the longest a round takes when all is
// well (the portal holds a long-poll for Config.Wait, and a portal that
// answers at once is asked again after Config.Interval). With the defaults
// of `portal agent`, 62 s. A round that hangs past it (the request's own
// timeout is Config.Wait plus 15 s) is not ready either.
func (a *Agent) ReadyWithin() time.Duration {
	return 2 * (a.cfg.Wait + a.cfg.Interval)
}

// readiness is /readyz's verdict at now, and the line that explains it.
func (a *Agent) readiness(now time.Time) (bool, string) {
	if !a.written.Load() {
		return false, "not ready: the web config file is not written yet"
	}
	success, failure, why := a.state.get()
	ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" }
	switch {
	case success.IsZero() && failure.IsZero():
		return false, "not ready: the portal has not answered yet"
	case success.IsZero():
		return false, "not ready: the portal has never answered; the latest round failed " + ago(failure) + ": " + why
	case failure.After(success):
		return false, "not ready: the latest round failed " + ago(failure) + ": " + why + "; the last success was " + ago(success)
	case now.Sub(success) > a.ReadyWithin():
		return false, "not ready: the last success was " + ago(success) + ", longer than " + a.ReadyWithin().String()
	}
	return true, "ready: the last sync with the portal succeeded " + ago(success)
}

// Run writes the web config at once, then keeps it in step with the portal
// until ctx is done, when it returns nil.
//
// The first write does not wait for the portal, so that the internal user
// works from the first second. It holds the base and, when the file an
// earlier run left is valid, the portal users that run wrote (marked with a
// comment) whose expiry has not passed: that file is more current than the
// base alone, and a restart while the portal is down must not lock every
// customer out. Users of the earlier run's base are not carried over, so a
// base that changed (a new internal password, a removed user) takes effect
// at once. Run returns an error only when this first write fails: the
// folder is missing or not writable, which no retry will mend.
//
// Afterwards, each round asks the portal for the cluster's users, holding
// the request up to Config.Wait when the agent already has an ETag. A new
// set is merged and written; a failure (unreachable, 401, 404, another
// status, an invalid document, a failed write) is logged, counted, and
// retried after a pause that grows from Config.Interval, doubling, up to
// 4 s (or Config.Interval, if longer), jittered so that clusters do not
// return to the portal in step; a success starts the pauses over. So a
// portal that comes back finds its agents within about 4 s. No failure
// changes the file.
//
// An answer beyond the agent's limits is refused like an invalid one,
// logged as an error and counted in portal_agent_publications_refused_total:
// a hash of bcrypt cost above webconfig.MaxBcryptCost (exporter-toolkit
// checks one hash at a time, so one slow hash, whether from an old
// credential or a spoofed portal, stalls every login for as long as it
// takes), more users than Config.MaxUsers, or more bytes than
// Config.MaxBytes (the answer, or the file it would make).
//
// The base and token files are looked at every second, whatever the agent
// is doing, so a changed Kubernetes Secret takes effect without a restart
// and within a second or two: a changed base is merged and written at once
// (one that is invalid is reported and ignored), and a changed token ends a
// request or pause under way, to ask the portal again with it.
//
// Whatever the portal is doing, and while a request or a pause is under
// way, a portal user leaves the file when its expiry passes: the portal
// publishes each user's expiry, and an unreachable portal, or a sync token
// nobody copied after a rotation, must not keep a credential working past
// its end.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.start(); err != nil {
		return err
	}
	a.watch = time.NewTicker(watchEvery)
	defer a.watch.Stop()
	for ctx.Err() == nil {
		a.reloadBase()
		began := time.Now()
		again, err := a.sync(ctx)
		if ctx.Err() != nil {
			break
		}
		var pause time.Duration
		switch {
		case errors.Is(err, errNewToken):
			a.log.Info("the sync token file changed during a request; asking the portal again with the new token", "file", a.cfg.TokenFile)
		case err != nil:
			pause = a.failed(err)
		default:
			a.m.lastSuccess.SetToCurrentTime()
			a.state.succeeded(time.Now())
			a.retry.Reset()
			if !again {
				// Paces a portal that answers at once instead of holding.
				pause = a.cfg.Interval - time.Since(began)
			}
		}
		a.sleep(ctx, pause)
	}
	a.expiry.Stop()
	return nil
}

// errNewToken ends a request abandoned for a changed token file: not a
// failure, since the portal was never heard.
var errNewToken = errors.New("the sync token file changed")

// failed counts, logs and records a failed round, and returns the pause
// before the next.
func (a *Agent) failed(err error) time.Duration {
	a.m.failures.Inc()
	a.state.failed(time.Now(), err)
	pause := a.failurePause()
	retryIn := pause.Round(time.Millisecond).String()
	if r := (*refusal)(nil); errors.As(err, &r) {
		a.m.refused.WithLabelValues(r.reason).Inc()
		a.log.Error("the portal's answer is refused; the web config file keeps its last good content",
			"reason", r.reason, "error", err.Error(), "retry_in", retryIn)
		return pause
	}
	a.log.Warn("sync with the portal failed; the web config file keeps its last good content",
		"error", err.Error(), "retry_in", retryIn)
	return pause
}

func (a *Agent) start() error {
	carried, expires := webconfig.Users{}, webconfig.Expiries{}
	doc, err := os.ReadFile(a.cfg.OutPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		a.log.Warn("cannot read the existing web config; starting from the base alone", "file", a.cfg.OutPath, "error", err.Error())
	default:
		if carried, expires, err = webconfig.CarriedUsers(doc); err != nil {
			a.log.Warn("the existing web config is invalid; replacing it with the base alone", "file", a.cfg.OutPath, "error", err.Error())
			carried, expires = webconfig.Users{}, webconfig.Expiries{}
		} else if len(carried) > 0 {
			a.log.Info("keeping the portal users of the last good web config until the portal answers", "file", a.cfg.OutPath, "users", len(carried))
		}
	}
	err = a.apply(carried, expires)
	if err != nil && len(carried) > 0 {
		if r := (*refusal)(nil); errors.As(err, &r) {
			a.m.refused.WithLabelValues(r.reason).Inc()
		}
		a.log.Warn("the last good web config's portal users cannot be kept; writing the base alone", "error", err.Error())
		err = a.apply(webconfig.Users{}, webconfig.Expiries{})
	}
	return err
}

// apply merges users, less those whose expiry has passed, into the base and
// writes the result if it differs from the file; then it sets the expiry
// timer for the next of them to expire. It changes nothing on error, and
// returns a *refusal when users, or the file they make, exceed the agent's
// limits (see checkLimits).
func (a *Agent) apply(users webconfig.Users, expires webconfig.Expiries) error {
	if err := a.checkLimits(users); err != nil {
		return err
	}
	now := time.Now()
	keep, keepExpires := make(webconfig.Users, len(users)), make(webconfig.Expiries, len(expires))
	var expired []string
	var next time.Time
	for name, h := range users {
		if at := expires[name]; !at.IsZero() {
			if !at.After(now) {
				expired = append(expired, name)
				continue
			}
			keepExpires[name] = at
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		keep[name] = h
	}
	m, err := webconfig.Merge(a.base, keep, keepExpires)
	if err != nil {
		return err
	}
	if len(m.Doc) > a.cfg.MaxBytes {
		return &refusal{refusedBytes, fmt.Sprintf("the web config with the portal's %d users would be %d bytes, more than the %d the agent writes (PORTAL_AGENT_MAX_BYTES)",
			len(m.Added), len(m.Doc), a.cfg.MaxBytes)}
	}
	for _, name := range m.Clashes {
		a.log.Warn("portal user left out: the base web config has a user of that name, and the base wins", "user", name)
	}
	wrote, err := writeIfChanged(a.cfg.OutPath, m.Doc)
	if err != nil {
		return err
	}
	a.users, a.expires = keep, keepExpires
	a.written.Store(true)
	a.m.users.Set(float64(len(m.Added)))
	slices.Sort(expired)
	for _, name := range expired {
		a.log.Info("credential expired; removed", "user", name, "expired_at", expires[name].UTC().Format(time.RFC3339))
	}
	if wrote {
		a.m.writes.Inc()
		a.log.Info("web config written", "file", a.cfg.OutPath, "portal_users", len(m.Added), "base_users", len(a.base.Users()))
	}
	if next.IsZero() {
		a.expiry.Stop()
	} else {
		a.expiry.Reset(max(time.Until(next), 0))
	}
	return nil
}

// checkLimits refuses more portal users than Config.MaxUsers, or a hash of a
// bcrypt cost above webconfig.MaxBcryptCost, with a *refusal. It reads each
// hash's cost from its prefix, which costs no hashing.
func (a *Agent) checkLimits(users webconfig.Users) error {
	if len(users) > a.cfg.MaxUsers {
		return &refusal{refusedUsers, fmt.Sprintf("the portal's answer holds %d users, more than the %d the agent writes (PORTAL_AGENT_MAX_USERS)",
			len(users), a.cfg.MaxUsers)}
	}
	for _, name := range slices.Sorted(maps.Keys(users)) {
		cost, err := bcrypt.Cost([]byte(users[name]))
		if err != nil {
			return fmt.Errorf("%w: user %q: not a bcrypt hash", webconfig.ErrInvalid, name)
		}
		if cost > webconfig.MaxBcryptCost {
			return &refusal{refusedCost, fmt.Sprintf("user %q has a bcrypt hash of cost %d, above the %d the agent accepts: Prometheus checks one hash at a time, "+
				"so a slow one stalls every login; revoke the credential and issue it again with PORTAL_BCRYPT_COST at %d or less",
				name, cost, webconfig.MaxBcryptCost, webconfig.MaxBcryptCost)}
		}
	}
	return nil
}

// expire drops the users whose expiry has passed. The timer fires by the
// monotonic clock and expiries are wall-clock times, so it may find none
// due yet; apply then sets the timer again for what remains. A failed write
// is retried after Config.Interval: an expired user must not stay.
func (a *Agent) expire() {
	if err := a.apply(a.users, a.expires); err != nil {
		a.expiry.Reset(a.cfg.Interval)
		a.log.Error("cannot remove an expired credential from the web config; retrying", "file", a.cfg.OutPath,
			"error", err.Error(), "retry_in", a.cfg.Interval.String())
	}
}

// reloadBase re-reads the base web config and, when it changed and is
// valid, rewrites the file with it.
func (a *Agent) reloadBase() {
	a.baseStamp = stampOf(a.cfg.BasePath) // before the read: a change after it is seen next time
	raw, err := os.ReadFile(a.cfg.BasePath)
	if err != nil {
		a.m.baseFailures.Inc()
		a.log.Error("cannot re-read the base web config; keeping the previous one", "file", a.cfg.BasePath, "error", err.Error())
		return
	}
	if bytes.Equal(raw, a.baseRaw) || bytes.Equal(raw, a.badBaseRaw) {
		return
	}
	base, err := parseBase(raw, a.cfg)
	if err != nil {
		a.badBaseRaw = raw
		a.m.baseFailures.Inc()
		a.log.Error("the base web config changed but is invalid; keeping the previous one", "file", a.cfg.BasePath, "error", err.Error())
		return
	}
	prev, prevRaw := a.base, a.baseRaw
	a.base, a.baseRaw, a.badBaseRaw = base, raw, nil
	if err := a.apply(a.users, a.expires); err != nil {
		a.base, a.baseRaw = prev, prevRaw
		a.m.baseFailures.Inc()
		a.log.Error("cannot write the web config with the changed base; keeping the previous one", "file", a.cfg.BasePath, "error", err.Error())
		return
	}
	a.log.Info("the base web config changed and is in force", "file", a.cfg.BasePath)
}

// answer is what the portal said to one request: a new set of users, or
// (modified false) that the set is unchanged.
type answer struct {
	modified bool
	users    webconfig.Users
	expires  webconfig.Expiries
	etag     string
	err      error
}

// sync makes one request to the portal and applies its answer. again
// reports a new set with an ETag, after which the next request may start at
// once: the portal will hold it. The request runs on its own goroutine so
// that users who expire while it is held, or hangs, leave the file on time,
// and a changed base or token file is seen meanwhile; the answer is applied
// here, on Run's. A changed token abandons the request with errNewToken.
func (a *Agent) sync(ctx context.Context) (again bool, err error) {
	token, err := a.readToken()
	if err != nil {
		return false, err
	}
	a.sentToken = token
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, 1)
	etag := a.etag
	go func() { answers <- a.fetch(ctx, token, etag) }()
	var ans answer
	for waiting := true; waiting; {
		select {
		case ans = <-answers:
			waiting = false
		case <-a.expiry.C:
			a.expire()
		case <-a.watch.C:
			if a.watchFiles() {
				cancel()
				<-answers
				return false, errNewToken
			}
		}
	}
	if ans.err != nil {
		return false, ans.err
	}
	if !ans.modified {
		return false, nil
	}
	if err := a.apply(ans.users, ans.expires); err != nil {
		return false, err
	}
	// Only now: a set that could not be written is asked for again.
	a.etag = ans.etag
	return a.etag != "", nil
}

// watchFiles looks at the stat of the base and token files. A changed base
// is reloaded at once. It reports whether the token file now holds a token
// other than the one the latest request sent; one that cannot be read is
// left to the next round to report.
func (a *Agent) watchFiles() (newToken bool) {
	if !sameStamp(stampOf(a.cfg.BasePath), a.baseStamp) {
		a.reloadBase()
	}
	if sameStamp(stampOf(a.cfg.TokenFile), a.tokenStamp) {
		return false
	}
	t, err := a.readToken()
	return err == nil && t != a.sentToken
}

// stampOf is the stat of the file at path, through any symlink, or nil if
// it cannot be had.
func stampOf(path string) fs.FileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return fi
}

// sameStamp reports whether two stats show the same file, unchanged: the
// same inode (a Kubernetes Secret update points the path at a new one),
// size and modification time.
func sameStamp(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// fetch asks the portal for the cluster's users with token, with
// If-None-Match etag when etag is set, and reads its answer. It touches
// none of the Agent's state but its configuration and client: it runs
// beside Run's goroutine.
func (a *Agent) fetch(ctx context.Context, token, etag string) answer {
	fail := func(err error) answer { return answer{err: err} }
	u := a.endpoint
	timeout := 30 * time.Second
	if etag != "" {
		u += "?wait=" + strconv.FormatFloat(a.cfg.Wait.Seconds(), 'f', -1, 64) + "s"
		timeout = a.cfg.Wait + 15*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(fmt.Errorf("request: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/yaml")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fail(fmt.Errorf("portal unreachable: %w", err))
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusNotModified:
		return answer{}
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fail(errors.New("the portal refused the sync token (401): check the token file against the cluster's token in the portal"))
	case http.StatusNotFound:
		return fail(fmt.Errorf("the portal does not know cluster %q (404)", a.cfg.Cluster))
	default:
		return fail(fmt.Errorf("the portal answered %s", resp.Status))
	}
	tooLarge := &refusal{refusedBytes, fmt.Sprintf("the portal's answer is larger than the %d bytes the agent accepts (PORTAL_AGENT_MAX_BYTES)", a.cfg.MaxBytes)}
	if resp.ContentLength > int64(a.cfg.MaxBytes) {
		return fail(tooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(a.cfg.MaxBytes)+1))
	if err != nil {
		return fail(fmt.Errorf("read the portal's answer: %w", err))
	}
	if len(body) > a.cfg.MaxBytes {
		return fail(tooLarge)
	}
	users, expires, err := webconfig.ParseUsers(body)
	if err != nil {
		return fail(fmt.Errorf("the portal's answer (%s) is not a valid user list: %w", contentType(resp), err))
	}
	return answer{modified: true, users: users, expires: expires, etag: resp.Header.Get("ETag")}
}

// readToken reads the sync token, and notes the file's stat for
// watchFiles. Its value never reaches a log line or error.
func (a *Agent) readToken() (string, error) {
	a.tokenStamp = stampOf(a.cfg.TokenFile) // before the read: a change after it is seen next time
	b, err := os.ReadFile(a.cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("sync token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	switch {
	case t == "":
		return "", fmt.Errorf("sync token: %s is empty", a.cfg.TokenFile)
	case strings.ContainsAny(t, "\r\n"):
		return "", fmt.Errorf("sync token: %s holds more than one line", a.cfg.TokenFile)
	}
	return t, nil
}

func contentType(resp *http.Response) string {
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "no content type"
}

// writeIfChanged replaces the file at path with doc, atomically: a reader
// sees the old content or the new, never a part. It reports whether it
// wrote; a file that already holds doc is left alone.
func writeIfChanged(path string, doc []byte) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, doc) {
		return false, nil
	}
	// The temporary file is in the same folder, so the rename cannot cross
	// file systems; its name starts with a dot so globs skip it.
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	err = func() error {
		if _, err := f.Write(doc); err != nil {
			return err
		}
		if err := f.Chmod(FileMode); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return f.Close()
	}()
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	// Make the rename itself durable; a folder that cannot be synced (some
	// file systems refuse) still has the new file in place.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return true, nil
}

// newRetry gives the pauses after failed rounds in a row: from interval,
// doubling, each jittered by backoffJitter, and never longer than
// maxRetryPause or interval, whichever is longer. The library jitters after
// capping, so its cap is set that much lower.
func newRetry(interval time.Duration) *backoff.ExponentialBackOff {
	capped := time.Duration(float64(max(maxRetryPause, interval)) / (1 + backoffJitter))
	b := &backoff.ExponentialBackOff{
		InitialInterval:     min(interval, capped),
		RandomizationFactor: backoffJitter,
		Multiplier:          2,
		MaxInterval:         capped,
	}
	b.Reset()
	return b
}

// failurePause is the pause after the latest of a run of failed rounds.
// Jitter may shorten a pause, but never below Config.Interval, the least
// time between two requests.
func (a *Agent) failurePause() time.Duration {
	return max(a.retry.NextBackOff(), a.cfg.Interval)
}

// sleep pauses for d or until ctx is done, dropping users as they expire
// and reloading a changed base meanwhile. A changed token ends the pause:
// the portal may have refused the old one, and the new one should be tried
// at once.
func (a *Agent) sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-a.expiry.C:
			a.expire()
		case <-a.watch.C:
			if a.watchFiles() {
				a.log.Info("the sync token file changed; asking the portal now", "file", a.cfg.TokenFile)
				return
			}
		}
	}
}
