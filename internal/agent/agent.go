// Package agent keeps a Prometheus web config file in step with the portal:
// it long-polls the portal for a cluster's active credentials, merges them
// into the cluster's own base web config (which keeps 2i2c's internal user),
// checks the result as exporter-toolkit will read it, and writes it
// atomically to the file Prometheus reads on every request. When the portal
// is unreachable or answers nonsense, the last good file stays, with one
// exception enforced locally: a portal user whose expiry (published by the
// portal and kept in the file's markers) has passed is dropped from the file
// at that moment, portal or no portal.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// FileMode is the mode of the written web config. Prometheus often runs as
// another user than the agent (the chart's default is nobody, 65534), and a
// file it cannot read makes every request fail; the file holds usernames
// and bcrypt hashes, no password, and in a pod it sits on a volume only the
// pod's containers mount. 0640 with a shared group (the pod's fsGroup) is
// tighter where the deployment guarantees that group.
const FileMode fs.FileMode = 0o644

// maxBackoff is the longest pause between two failed rounds, unless the
// configured interval is longer.
const maxBackoff = time.Minute

// backoffJitter is how far, as a fraction either way, a pause after a
// failure strays from its nominal length, so that clusters do not return to
// the portal in step.
const backoffJitter = 0.5

// maxBody bounds the portal's answer: about 50,000 users.
const maxBody = 4 << 20

// Config is what an Agent needs to know.
type Config struct {
	// PortalURL is the portal's base URL, e.g. https://credentials.2i2c.org.
	PortalURL *url.URL
	// Cluster is the cluster's name in the portal.
	Cluster string
	// TokenFile holds the cluster's sync token. It is read at every request,
	// so a rotated Kubernetes secret is picked up without a restart.
	TokenFile string
	// BasePath is the cluster's own web config.
	BasePath string
	// OutPath is the web config Prometheus reads (--web.config.file).
	OutPath string
	// Wait is how long the portal may hold a request before answering 304;
	// at most webconfig.MaxWait.
	Wait time.Duration
	// Interval is the least time between two requests and the first pause
	// after a failure; pauses about double, jittered, up to a minute (or
	// Interval, if longer).
	Interval time.Duration
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

	written atomic.Bool
	m       metrics
}

type metrics struct {
	reg          *prometheus.Registry
	lastSuccess  prometheus.Gauge
	failures     prometheus.Counter
	users        prometheus.Gauge
	writes       prometheus.Counter
	baseFailures prometheus.Counter
}

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
	}
	raw, err := os.ReadFile(cfg.BasePath)
	if err != nil {
		return nil, fmt.Errorf("base web config: %w", err)
	}
	base, err := webconfig.ParseWebConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("base web config %s: %w", cfg.BasePath, err)
	}
	if err := checkTLSPaths(base, cfg.BasePath, cfg.OutPath); err != nil {
		return nil, fmt.Errorf("base web config %s: %w", cfg.BasePath, err)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	a := &Agent{
		cfg:      cfg,
		log:      log,
		client:   client,
		endpoint: cfg.PortalURL.JoinPath(webconfig.PublicationPath(cfg.Cluster)).String(),
		base:     base,
		baseRaw:  raw,
		retry:    newRetry(cfg.Interval),
		expiry:   time.NewTimer(time.Hour),
		m:        newMetrics(),
	}
	a.expiry.Stop()
	if cfg.PortalURL.Scheme == "http" {
		log.Warn("the portal URL is plain http: the sync token crosses the network unencrypted", "portal", cfg.PortalURL.String())
	}
	return a, nil
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
		users: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portal_agent_users",
			Help: "Portal users in the written web config."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "portal_agent_writes_total",
			Help: "Times the web config file was replaced."}),
		baseFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "portal_agent_base_reload_failures_total",
			Help: "Times the base web config changed on disk but could not be used; the previous base stays in force."}),
	}
	m.reg.MustRegister(m.lastSuccess, m.failures, m.users, m.writes, m.baseFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /healthz, 200 once the web config file holds what the agent
// means it to (written, or found already so), 503 before; and /metrics, from
// the agent's own registry.
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{}))
	return mux
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
// retried after a pause that grows from Config.Interval, doubling, up to a
// minute (or Config.Interval, if longer), jittered so that clusters do not
// return to the portal in step; a success starts the pauses over. No
// failure changes the file. The base file is re-read each round, so a
// changed Kubernetes secret takes effect without a restart; a changed base
// that is invalid is reported and ignored.
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
	for ctx.Err() == nil {
		a.reloadBase()
		began := time.Now()
		again, err := a.sync(ctx)
		if ctx.Err() != nil {
			break
		}
		var pause time.Duration
		if err != nil {
			a.m.failures.Inc()
			pause = a.failurePause()
			a.log.Warn("sync with the portal failed; the web config file keeps its last good content",
				"error", err.Error(), "retry_in", pause.Round(time.Millisecond).String())
		} else {
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
		a.log.Warn("the last good web config's portal users cannot be kept; writing the base alone", "error", err.Error())
		err = a.apply(webconfig.Users{}, webconfig.Expiries{})
	}
	return err
}

// apply merges users, less those whose expiry has passed, into the base and
// writes the result if it differs from the file; then it sets the expiry
// timer for the next of them to expire. It changes nothing on error.
func (a *Agent) apply(users webconfig.Users, expires webconfig.Expiries) error {
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
	raw, err := os.ReadFile(a.cfg.BasePath)
	if err != nil {
		a.m.baseFailures.Inc()
		a.log.Error("cannot re-read the base web config; keeping the previous one", "file", a.cfg.BasePath, "error", err.Error())
		return
	}
	if bytes.Equal(raw, a.baseRaw) || bytes.Equal(raw, a.badBaseRaw) {
		return
	}
	base, err := webconfig.ParseWebConfig(raw)
	if err == nil {
		err = checkTLSPaths(base, a.cfg.BasePath, a.cfg.OutPath)
	}
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
// that users who expire while it is held, or hangs, leave the file on time;
// the answer is applied here, on Run's.
func (a *Agent) sync(ctx context.Context) (again bool, err error) {
	answers := make(chan answer, 1)
	etag := a.etag
	go func() { answers <- a.fetch(ctx, etag) }()
	var ans answer
	for waiting := true; waiting; {
		select {
		case ans = <-answers:
			waiting = false
		case <-a.expiry.C:
			a.expire()
		}
	}
	if ans.err != nil {
		return false, ans.err
	}
	if !ans.modified {
		a.m.lastSuccess.SetToCurrentTime()
		return false, nil
	}
	if err := a.apply(ans.users, ans.expires); err != nil {
		return false, err
	}
	// Only now: a set that could not be written is asked for again.
	a.etag = ans.etag
	a.m.lastSuccess.SetToCurrentTime()
	return a.etag != "", nil
}

// fetch asks the portal for the cluster's users, with If-None-Match etag
// when etag is set, and reads its answer. It touches none of the Agent's
// state but its configuration and client: it runs beside Run's goroutine.
func (a *Agent) fetch(ctx context.Context, etag string) answer {
	fail := func(err error) answer { return answer{err: err} }
	token, err := a.token()
	if err != nil {
		return fail(err)
	}
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fail(fmt.Errorf("read the portal's answer: %w", err))
	}
	if len(body) > maxBody {
		return fail(fmt.Errorf("the portal's answer is larger than %d bytes", maxBody))
	}
	users, expires, err := webconfig.ParseUsers(body)
	if err != nil {
		return fail(fmt.Errorf("the portal's answer (%s) is not a valid user list: %w", contentType(resp), err))
	}
	return answer{modified: true, users: users, expires: expires, etag: resp.Header.Get("ETag")}
}

// token reads the sync token. Its value never reaches a log line or error.
func (a *Agent) token() (string, error) {
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
// maxBackoff or interval, whichever is longer. The library jitters after
// capping, so its cap is set that much lower.
func newRetry(interval time.Duration) *backoff.ExponentialBackOff {
	capped := time.Duration(float64(max(maxBackoff, interval)) / (1 + backoffJitter))
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
// meanwhile.
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
		}
	}
}
