// Command load is the load test of `portal serve`: it seeds a database of
// its own at production scale, runs the portal built from this tree as a
// separate process against it, with the development OIDC provider as its
// issuer, lets signed-in customers and staff use it as people do, then
// saturates it, and prints per-route latency, throughput, errors and the
// portal's peak memory against their targets.
//
//	make load
//	go run ./tools/withpg -- go run ./tools/load [-quick] [-duration 60s] [-customers 50] [-staff 5] [-requests 10000] [-events 1000000]
//
// It exits non-zero when a target is missed, unless -fail=false.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/loadseed"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// The targets.
const (
	targetPageP99     = 50 * time.Millisecond // every GET page, while people browse
	targetPeakRSS     = 150_000_000           // bytes: 150 MB
	targetSaturations = 0.1                   // saturated page views per /healthz, at the same concurrency
	saturateSlices    = 10                    // turns pages and /healthz take while saturating
)

// config is what one run does.
type config struct {
	Requests  int // credentials seeded, each with its approved request; pending, denied and cancelled ones come on top
	Events    int // audit events seeded
	Customers int
	Staff     int
	Clusters  int
	Browse    time.Duration // the browse phase
	Pause     time.Duration // a person's time on a page
	Saturate  time.Duration // each half of the saturate phase
	Clients   int           // concurrent clients while saturating
	Keep      bool          // keep the database
	Each      bool          // also saturate each customer page alone
	Verify    bool          // run `portal audit verify` on the database afterwards

	// strayPath, when set, is a page that does not exist which the first
	// customer visits once: the test's proof that errors are counted.
	strayPath string
}

func main() {
	cfg := config{}
	quick := flag.Bool("quick", false, "a quick run for development: 1,000 credentials, 10,000 events, 10 s of browsing, 5 s of each saturation (flags given explicitly still win)")
	flag.IntVar(&cfg.Requests, "requests", 10_000, "credentials to seed, each with its approved request; 3% more requests pending, 1.5% denied, 1% cancelled")
	flag.IntVar(&cfg.Events, "events", 1_000_000, "audit events to seed, in one hash chain")
	flag.IntVar(&cfg.Customers, "customers", 50, "signed-in customers browsing")
	flag.IntVar(&cfg.Staff, "staff", 5, "signed-in staff reviewing and approving")
	flag.IntVar(&cfg.Clusters, "clusters", 30, "clusters to seed")
	flag.DurationVar(&cfg.Browse, "duration", 60*time.Second, "how long people browse")
	flag.DurationVar(&cfg.Pause, "pause", time.Second, "a person's pause between pages while browsing")
	flag.DurationVar(&cfg.Saturate, "saturate", 10*time.Second, "how long pages, then /healthz, are requested without pause")
	flag.IntVar(&cfg.Clients, "clients", 8, "concurrent clients while saturating")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the load's database afterwards")
	flag.BoolVar(&cfg.Each, "each", false, "after the mixed saturation, saturate each customer page alone for the same time and print its throughput against /healthz")
	flag.BoolVar(&cfg.Verify, "verify", false, "run `portal audit verify` on the database at the end")
	fail := flag.Bool("fail", true, "exit non-zero when a target is missed")
	flag.Parse()
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]any{"requests": 1_000, "events": 10_000, "duration": 10 * time.Second, "saturate": 5 * time.Second} {
			if !set[name] {
				switch v := v.(type) {
				case int:
					_ = flag.Set(name, fmt.Sprint(v))
				case time.Duration:
					_ = flag.Set(name, v.String())
				}
			}
		}
	}
	if cfg.Customers < 2 || cfg.Staff < 1 || cfg.Clusters < 1 || cfg.Requests < 1 || cfg.Events < 0 || cfg.Clients < 1 {
		fmt.Fprintln(os.Stderr, "load: want at least 2 customers, 1 member of staff, 1 cluster, 1 request and 1 client")
		os.Exit(2)
	}
	rep, err := run(context.Background(), cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	if !rep.passed && *fail {
		os.Exit(1)
	}
}

// report is what a run measured.
type report struct {
	browse, saturate *recorder
	healthz          *recorder
	alone            []*recorder // each customer page saturated alone (-each)
	pagesPerSecond   float64
	healthzPerSecond float64
	peakRSS          int64
	verified         string   // the output of `portal audit verify`, if run
	logErrors        int      // lines at level ERROR in the portal's log
	logErrorLines    []string // the first few
	passed           bool
}

func run(ctx context.Context, cfg config, w io.Writer) (*report, error) {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		return nil, errors.New("DATABASE_URL is not set: run `make load`, which starts a throwaway PostgreSQL")
	}
	dbName := fmt.Sprintf("load_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	dbURL, err := loadseed.DatabaseURL(dsn, dbName)
	if err != nil {
		return nil, err
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return nil, fmt.Errorf("create the load's database: %w", err)
	}
	if cfg.Keep {
		fmt.Fprintf(w, "keeping database %s\n", dbName)
	} else {
		defer admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE "+dbName+" WITH (FORCE)") //nolint:errcheck
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool, nil); err != nil {
		return nil, err
	}

	// The portal is built while the database is seeded.
	dir, err := os.MkdirTemp("", "portal-load")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "portal")
	buildCtx, stopBuild := context.WithCancel(ctx)
	var build sync.WaitGroup
	var buildErr error
	build.Go(func() { buildErr = buildPortal(buildCtx, bin) })
	defer func() { stopBuild(); build.Wait() }()

	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	base := "http://" + addr
	idp, err := startProvider(base)
	if err != nil {
		return nil, err
	}
	defer idp.close()

	customers, staff := identities(cfg.Customers, cfg.Staff)
	sz := sizesFor(cfg)
	fmt.Fprintf(w, "== seeding %d credentials, %d pending requests, %d denied, %d cancelled over %d clusters for %d customers and %d staff; %d audit events\n",
		sz.credentials, sz.pending, sz.denied, sz.cancelled, sz.clusters, cfg.Customers, cfg.Staff, sz.events)
	sd, err := seed(ctx, pool, idp.idp.Issuer(), customers, staff, sz)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "seeded %d requests, %d credentials, %d audit events in %s (the audit log %s of it)\n",
		sd.requests, sd.creds, sz.events, sd.took.Round(time.Millisecond), sd.auditTook.Round(time.Millisecond))

	if build.Wait(); buildErr != nil {
		return nil, buildErr
	}
	logPath := filepath.Join(dir, "portal.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	p, err := startPortal(ctx, bin, base, dbURL, idp, logFile)
	if err != nil {
		return nil, err
	}
	defer p.stop()

	transport := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	rep := &report{}

	// Everyone signs in, then browses.
	signIns := newRecorder()
	var people []*person
	for i, id := range append(append([]identity{}, customers...), staff...) {
		start := time.Now()
		pp, err := signIn(ctx, base, id, transport, uint64(i))
		signIns.record("sign-in (login, provider, callback)", "/login", time.Since(start), http.StatusOK, 0, err)
		if err != nil {
			return nil, err
		}
		pp.wait = cfg.Pause
		pp.requests, pp.credentials = sd.requestsOf[id.Email], sd.credentialsOf[id.Email]
		people = append(people, pp)
	}
	signIns.stop()

	fmt.Fprintf(w, "== browse: %d customers and %d staff for %s, %s between pages (machine load average %s)\n",
		cfg.Customers, cfg.Staff, cfg.Browse, cfg.Pause, loadAverage())
	rep.browse = newRecorder()
	var walks []func(context.Context)
	query := auditFilter(customers[0].Email)
	for i, pp := range people {
		steps, offset, extra := customerSteps, i, ""
		if pp.staff {
			steps, offset = staffSteps(i-cfg.Customers, cfg.Staff, query), 0
		} else if i == 0 {
			extra = cfg.strayPath
		}
		walks = append(walks, func(ctx context.Context) { pp.walk(ctx, rep.browse, steps, offset, extra) })
	}
	during(ctx, cfg.Browse, walks)
	rep.browse.stop()

	fmt.Fprintf(w, "== saturate: %d clients without pause, %s of signed-in pages and %s of /healthz, in %d turns each (machine load average %s)\n",
		cfg.Clients, cfg.Saturate, cfg.Saturate, saturateSlices, loadAverage())
	if rep.saturate, rep.healthz, rep.alone, err = saturate(ctx, cfg, base, transport, people[:cfg.Customers]); err != nil {
		return nil, err
	}

	rep.peakRSS = p.peakRSS()
	p.stop()
	// The portal's own error lines count as errors too.
	if rep.logErrors, rep.logErrorLines, err = logErrors(logPath); err != nil {
		return nil, err
	}
	if cfg.Verify {
		if rep.verified, err = verify(ctx, bin, dbURL); err != nil {
			return nil, err
		}
	}
	rep.print(w, signIns)
	return rep, nil
}

// during runs each job in a goroutine of its own, with a context that ends
// after d, and returns once they all have.
func during(ctx context.Context, d time.Duration, jobs []func(context.Context)) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(func() { job(ctx) })
	}
	wg.Wait()
}

// saturate requests signed-in pages without pause from cfg.Clients fresh
// sessions of the customers (who start from the ids they saw while
// browsing), and /healthz at the same concurrency, each for cfg.Saturate in
// all, in turns.
func saturate(ctx context.Context, cfg config, base string, transport http.RoundTripper, customers []*person) (pages, healthz *recorder, alone []*recorder, err error) {
	var clients []*person
	for i := range cfg.Clients {
		known := customers[i%len(customers)]
		pp, err := signIn(ctx, base, known.identity, transport, uint64(1000+i))
		if err != nil {
			return nil, nil, nil, err
		}
		pp.requests, pp.credentials = known.requests, known.credentials
		clients = append(clients, pp)
	}
	pages, healthz = newRecorder(), newRecorder()
	var walks, probes []func(context.Context)
	for i, pp := range clients {
		walks = append(walks, func(ctx context.Context) { pp.walk(ctx, pages, customerSteps, i, "") })
	}
	for range cfg.Clients {
		// One each: a person reads each answer into a buffer of their own.
		probe := &person{base: base, client: &http.Client{Transport: transport, Timeout: 30 * time.Second}}
		probes = append(probes, func(ctx context.Context) {
			for ctx.Err() == nil {
				_, _ = probe.get(ctx, healthz, "GET /healthz", "/healthz")
			}
		})
	}
	// Pages and /healthz take turns, a slice each, so that both are
	// measured under the same conditions of the machine: one long run of
	// each was seen to differ by half from one run to the next, as the
	// machine's speed drifted between the two.
	slice := max(cfg.Saturate/saturateSlices, 100*time.Millisecond)
	for range saturateSlices {
		pages.resume()
		during(ctx, slice, walks)
		pages.pause()
		healthz.resume()
		during(ctx, slice, probes)
		healthz.pause()
	}
	pages.stop()
	healthz.stop()

	if cfg.Each {
		for i := range customerSteps {
			alone = append(alone, saturatePages(ctx, cfg.Saturate, clients, customerSteps[i:i+1]))
		}
	}
	return pages, healthz, alone, nil
}

// saturatePages has clients walk steps without pause for d.
func saturatePages(ctx context.Context, d time.Duration, clients []*person, steps []step) *recorder {
	rec := newRecorder()
	var walks []func(context.Context)
	for i, pp := range clients {
		walks = append(walks, func(ctx context.Context) { pp.walk(ctx, rec, steps, i, "") })
	}
	during(ctx, d, walks)
	rec.stop()
	return rec
}

// print writes the tables and the verdict on each target, and sets passed.
func (rep *report) print(w io.Writer, signIns *recorder) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "== browse (people with a pause between pages)")
	rep.browse.printTable(w)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "== saturate (no pause)")
	rep.saturate.printTable(w)
	rep.healthz.printTable(w)
	fmt.Fprintln(w)
	signIns.printTable(w)

	pages, pageErrs := rep.saturate.total()
	probes, probeErrs := rep.healthz.total()
	rep.pagesPerSecond = float64(pages) / rep.saturate.seconds()
	rep.healthzPerSecond = float64(probes) / rep.healthz.seconds()
	ratio := rep.pagesPerSecond / rep.healthzPerSecond
	fmt.Fprintf(w, "\nsaturated: signed-in pages %.1f/s, /healthz %.1f/s, ratio %.3f\n", rep.pagesPerSecond, rep.healthzPerSecond, ratio)
	if len(rep.alone) > 0 {
		fmt.Fprintln(w, "\neach page alone, without pause (against the same /healthz):")
		fmt.Fprintf(w, "%-46s %9s %9s %9s\n", "route", "per s", "ratio", "errors")
		for _, a := range rep.alone {
			for _, s := range a.summary() {
				fmt.Fprintf(w, "%-46s %9.1f %9.3f %9d\n", s.route, s.perSecond, s.perSecond/rep.healthzPerSecond, s.errors)
			}
		}
	}
	fmt.Fprintf(w, "peak resident memory of the portal: %.1f MB\n", float64(rep.peakRSS)/1e6)
	if rep.verified != "" {
		fmt.Fprintf(w, "portal audit verify: %s\n", strings.TrimSpace(rep.verified))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "== targets")
	rep.passed = true
	verdict := func(ok bool, what string) {
		mark := "PASS"
		if !ok {
			mark, rep.passed = "FAIL", false
		}
		fmt.Fprintf(w, "%s  %s\n", mark, what)
	}
	var slow []string
	for _, s := range rep.browse.summary() {
		if s.pageWithTarget && s.p99 >= targetPageP99 {
			slow = append(slow, fmt.Sprintf("%s %.1f ms", s.route, msf(s.p99)))
		}
	}
	verdict(len(slow) == 0, fmt.Sprintf("p99 < %s on every GET page while browsing%s", targetPageP99, listed(slow)))
	_, browseErrs := rep.browse.total()
	for _, a := range rep.alone {
		_, e := a.total()
		pageErrs += e
	}
	errs := browseErrs + pageErrs + probeErrs + rep.logErrors
	verdict(errs == 0, fmt.Sprintf("no errors (%d while browsing, %d while saturating, %d on /healthz, %d in the portal's log)",
		browseErrs, pageErrs, probeErrs, rep.logErrors))
	for _, l := range rep.logErrorLines {
		fmt.Fprintf(w, "      %s\n", l)
	}
	verdict(rep.peakRSS < targetPeakRSS, fmt.Sprintf("peak RSS < %d MB (%.1f MB)", targetPeakRSS/1_000_000, float64(rep.peakRSS)/1e6))
	verdict(ratio >= targetSaturations, fmt.Sprintf("saturated page views >= 1/10 of /healthz (%.3f)", ratio))
}

// loadAverage returns the machine's load averages over 1, 5 and 15
// minutes: other work on the machine shows in the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func listed(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return ": missed by " + strings.Join(items, ", ")
}
