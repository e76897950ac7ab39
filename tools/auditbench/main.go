// Command auditbench measures the audit review on a log of a million events:
// it seeds a database of its own on the PostgreSQL server DATABASE_URL names
// (a real hash chain, written with COPY), then times the review's first page
// and a filtered page (EXPLAIN ANALYZE and wall-clock, in the store and over
// HTTP), streams the whole log as CSV and JSON Lines from a running portal
// while watching that process's resident memory, and times
// `portal audit verify`. It prints the figures against their targets.
//
//	make bench-audit
//	go run ./tools/withpg -- go run ./tools/auditbench [-events N] [-keep] [-explain-all]
//
// The portal under test is `portal dev` built from this tree and pointed at
// the benchmark's database: a separate process, so that its memory is its
// own, with the development sign-in for a staff session.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/loadseed"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// The review's targets: a page of events, a whole export, and what an export may add to the process's memory.
const (
	targetPage         = 50 * time.Millisecond
	targetExport       = 15 * time.Second
	targetExportGrowth = 50 << 20 // bytes of resident memory
)

func main() {
	events := flag.Int("events", 1_000_000, "audit events to seed")
	keep := flag.Bool("keep", false, "keep the benchmark database afterwards")
	explainAll := flag.Bool("explain-all", false, "print the plan of every query, not only the two with targets")
	flag.Parse()
	if err := run(context.Background(), *events, *keep, *explainAll); err != nil {
		fmt.Fprintln(os.Stderr, "auditbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, events int, keep, explainAll bool) error {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		return errors.New("DATABASE_URL is not set: run `make bench-audit`, which starts a throwaway PostgreSQL")
	}
	dbName := fmt.Sprintf("auditbench_%d", os.Getpid())
	benchURL, err := loadseed.DatabaseURL(dsn, dbName)
	if err != nil {
		return err
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return fmt.Errorf("create the benchmark database: %w", err)
	}
	if keep {
		fmt.Printf("keeping database %s\n", dbName)
	} else {
		defer admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE "+dbName+" WITH (FORCE)") //nolint:errcheck
	}

	pool, err := pgxpool.New(ctx, benchURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool, nil); err != nil {
		return err
	}
	st := store.New(pool)

	fmt.Printf("== seeding %d audit events\n", events)
	sd, err := seed(ctx, pool, events)
	if err != nil {
		return err
	}
	var size string
	if err := pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('audit_events'))`).Scan(&size); err != nil {
		return err
	}
	fmt.Printf("seeded in %s (hash chain computed in Go, written with COPY); audit_events with its indexes: %s\n\n",
		sd.took.Round(time.Millisecond), size)

	bin, err := buildPortal(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))

	// The queries, in the store and explained.
	month := time.Now().UTC().AddDate(0, -6, 0)
	monthStart := time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, time.UTC)
	monthEnd := monthStart.AddDate(0, 1, 0)
	cases := []pageCase{
		{name: "first page, no filter", filter: portal.AuditFilter{}},
		{name: "filtered: actor + action + one month", filter: portal.AuditFilter{Actor: sd.topActor, Action: portal.ActionSignedIn,
			From: monthStart, To: monthEnd},
			query: url.Values{"actor": {sd.topActor}, "action": {string(portal.ActionSignedIn)},
				"from": {monthStart.Format(time.DateOnly)}, "to": {monthEnd.AddDate(0, 0, -1).Format(time.DateOnly)}}},
		{name: "filtered: staff prefix + rare action + one month", filter: portal.AuditFilter{Actor: "staff*", Action: portal.ActionRequestDenied,
			From: monthStart, To: monthEnd},
			query: url.Values{"actor": {"staff*"}, "action": {string(portal.ActionRequestDenied)},
				"from": {monthStart.Format(time.DateOnly)}, "to": {monthEnd.AddDate(0, 0, -1).Format(time.DateOnly)}}},
		{name: "filtered: cluster", filter: portal.AuditFilter{ClusterID: sd.clusterID}, query: url.Values{"cluster": {sd.clusterName}}},
		{name: "filtered: one request (subject)", filter: portal.AuditFilter{SubjectType: portal.SubjectRequest, SubjectID: 4242},
			query: url.Values{"subject_type": {"request"}, "subject_id": {"4242"}}},
		{name: "text in details only, common word", filter: portal.AuditFilter{Text: "steering"}, query: url.Values{"q": {"steering"}}},
		{name: "text in details only, rare word", filter: portal.AuditFilter{Text: "notebook"}, query: url.Values{"q": {"notebook"}}},
		{name: "text in details only, no match (whole scan)", filter: portal.AuditFilter{Text: "no-such-words"}, query: url.Values{"q": {"no-such-words"}}},
	}
	fmt.Println("== review queries in the store (page of 50; median of 20 runs)")
	for i := range cases {
		if err := cases[i].measureStore(ctx, st); err != nil {
			return err
		}
	}

	// The portal, over HTTP.
	portal, err := startPortal(ctx, bin, benchURL)
	if err != nil {
		return err
	}
	defer portal.stop()
	client, err := portal.signIn(ctx, "sam@2i2c.org")
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("== the same pages over HTTP, GET /api/v1/audit (median of 20 runs)")
	for i := range cases {
		if err := cases[i].measureHTTP(ctx, client, portal.base); err != nil {
			return err
		}
	}
	fmt.Println()
	fmt.Printf("%-50s %12s %12s %12s %8s\n", "query", "server (ms)", "store (ms)", "HTTP (ms)", "target")
	for _, c := range cases {
		verdict := "ok"
		if c.explainMS > ms(targetPage) {
			verdict = "MISSED"
		}
		if strings.HasPrefix(c.name, "text") || strings.Contains(c.name, "subject") || strings.Contains(c.name, "cluster") {
			verdict = "-" // informative
		}
		fmt.Printf("%-50s %12.2f %12.2f %12.2f %8s\n", c.name, c.explainMS, c.storeMS, c.httpMS, verdict)
	}
	fmt.Println()
	explained := cases[:2]
	if explainAll {
		explained = cases
	}
	for _, c := range explained {
		fmt.Printf("-- EXPLAIN (ANALYZE, BUFFERS): %s\n%s\n\n", c.name, c.explain)
	}

	// Exports of the whole log.
	fmt.Println("== exports of the whole log over HTTP, memory of the portal process")
	for _, path := range []string{"/staff/audit/export.csv", "/staff/audit/export.jsonl"} {
		if err := measureExport(ctx, client, portal, path, events); err != nil {
			return err
		}
	}
	portal.stop()

	// The command.
	fmt.Println()
	fmt.Println("== portal audit verify")
	return measureVerify(ctx, bin, benchURL)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// seeded is what the seeding left for the queries to look for.
type seeded struct {
	took        time.Duration
	topActor    string // the busiest customer
	clusterID   int64
	clusterName string
}

// seed writes users, clusters and n audit events spread over the last year,
// as the portal would have: each event's hash follows from the one before.
func seed(ctx context.Context, pool *pgxpool.Pool, n int) (*seeded, error) {
	start := time.Now()
	var users []loadseed.User
	rows, err := pool.Query(ctx, `
		INSERT INTO users (issuer, subject, email, name, role)
		SELECT 'https://idp.example', 'subject-' || g,
		       CASE WHEN g <= 10 THEN format('staff%s@2i2c.org', lpad(g::text, 2, '0'))
		            ELSE format('user%s@%s', lpad(g::text, 3, '0'), (ARRAY['example.org', 'uni.example.edu', 'lab.example.net'])[1 + g % 3]) END,
		       'User ' || g, CASE WHEN g <= 10 THEN 'staff' ELSE 'customer' END
		FROM generate_series(1, 200) g
		RETURNING id, email, role = 'staff'`)
	if err != nil {
		return nil, fmt.Errorf("seed users: %w", err)
	}
	for rows.Next() {
		var u loadseed.User
		if err := rows.Scan(&u.ID, &u.Email, &u.Staff); err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seed users: %w", err)
	}
	var clusters []loadseed.Cluster
	rows, err = pool.Query(ctx, `
		INSERT INTO clusters (name, display_name, prometheus_url)
		SELECT 'hub-' || lpad(g::text, 2, '0'), 'Hub ' || g, format('https://prometheus.hub-%s.2i2c.cloud', lpad(g::text, 2, '0'))
		FROM generate_series(1, 25) g
		RETURNING id, name`)
	if err != nil {
		return nil, fmt.Errorf("seed clusters: %w", err)
	}
	for rows.Next() {
		var c loadseed.Cluster
		if err := rows.Scan(&c.ID, &c.Name); err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seed clusters: %w", err)
	}

	src := loadseed.NewEventSource(n, users, clusters)
	if err := loadseed.CopyAuditEvents(ctx, pool, src); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `ANALYZE users; ANALYZE clusters; ANALYZE audit_events`); err != nil {
		return nil, err
	}
	return &seeded{took: time.Since(start), topActor: src.BusiestCustomer().Email, clusterID: clusters[3].ID, clusterName: clusters[3].Name}, nil
}

// pageCase is one review query and what it measured.
type pageCase struct {
	name    string
	filter  portal.AuditFilter
	query   url.Values
	explain string
	// Milliseconds: PostgreSQL's execution time, the store call's and the
	// HTTP request's medians.
	explainMS, storeMS, httpMS float64
}

const runs = 20

func (c *pageCase) measureStore(ctx context.Context, st *store.Store) error {
	times := make([]time.Duration, 0, runs)
	var n int
	for range runs {
		start := time.Now()
		rs, err := st.AuditEvents(ctx, c.filter, nil, 51)
		if err != nil {
			return err
		}
		times = append(times, time.Since(start))
		n = len(rs)
	}
	c.storeMS = ms(median(times))
	// Explained after the timed runs, with the same warm cache.
	var err error
	if c.explain, err = st.ExplainAuditEvents(ctx, c.filter, nil, 51); err != nil {
		return err
	}
	for line := range strings.Lines(c.explain) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Execution Time: "); ok {
			c.explainMS, _ = strconv.ParseFloat(strings.TrimSuffix(v, " ms"), 64)
		}
	}
	fmt.Printf("  %-50s %3d rows  EXPLAIN %8.2f ms  store %8.2f ms\n", c.name, n, c.explainMS, c.storeMS)
	return nil
}

func (c *pageCase) measureHTTP(ctx context.Context, client *http.Client, base string) error {
	times := make([]time.Duration, 0, runs)
	for range runs {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/audit?"+c.query.Encode(), nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		var body struct {
			Events []json.RawMessage `json:"events"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /api/v1/audit?%s: %d %v", c.query.Encode(), resp.StatusCode, err)
		}
		times = append(times, time.Since(start))
	}
	c.httpMS = ms(median(times))
	fmt.Printf("  %-50s HTTP %8.2f ms\n", c.name, c.httpMS)
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// buildPortal builds the portal of this tree into a temporary folder.
func buildPortal(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "auditbench")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "portal")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/portal")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the portal: %w", err)
	}
	return bin, nil
}

// runningPortal is `portal dev` on the benchmark's database.
type runningPortal struct {
	cmd  *exec.Cmd
	base string
	once sync.Once
}

func startPortal(ctx context.Context, bin, dbURL string) (*runningPortal, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bin, "dev")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "PORTAL_LISTEN="+addr, "PORTAL_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// `portal dev` calls 127.0.0.1 localhost in its own links; cookies
	// follow the name.
	_, port, _ := net.SplitHostPort(addr)
	p := &runningPortal{cmd: cmd, base: "http://localhost:" + port}
	if err := loadseed.WaitReady(p.base, 60*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *runningPortal) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	})
}

// signIn signs in through the development provider, as the tests do.
func (p *runningPortal) signIn(ctx context.Context, email string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 5 * time.Minute}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/login?login_hint="+url.QueryEscape(email), nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	// Staff land on the queue, customers on their dashboard.
	if landed := resp.Request.URL.Path; resp.StatusCode != http.StatusOK || (landed != "/staff/requests" && landed != "/dashboard") {
		return nil, fmt.Errorf("sign-in as %s ended at %s with %d", email, resp.Request.URL, resp.StatusCode)
	}
	return client, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// measureExport downloads path in full while sampling the portal's resident
// memory.
func measureExport(ctx context.Context, client *http.Client, p *runningPortal, path string, events int) error {
	pid := p.cmd.Process.Pid
	before, err := loadseed.RSS(pid, "VmRSS")
	if err != nil {
		return err
	}
	// Reset the peak, so that VmHWM afterwards is the peak of this export.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	var peak atomic.Int64
	peak.Store(before)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if v, err := loadseed.RSS(pid, "VmRSS"); err == nil && v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		close(done)
		return err
	}
	var firstByte time.Duration
	lines, bytes := 0, int64(0)
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if bytes == 0 && len(line) > 0 {
			firstByte = time.Since(start)
		}
		bytes += int64(len(line))
		if err == nil {
			lines++
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if !errors.Is(err, io.EOF) {
			close(done)
			resp.Body.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		break
	}
	resp.Body.Close()
	took := time.Since(start)
	close(done)
	after, _ := loadseed.RSS(pid, "VmRSS")
	hwm, err := loadseed.RSS(pid, "VmHWM")
	if err == nil && hwm > peak.Load() {
		peak.Store(hwm)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d", path, resp.StatusCode)
	}
	growth := peak.Load() - before
	verdict := "ok"
	if took > targetExport || growth > targetExportGrowth {
		verdict = "MISSED"
	}
	fmt.Printf("  GET %s: %d lines for %d events, %.1f MiB in %s (first byte after %s), %s\n",
		path, lines, events, float64(bytes)/(1<<20), took.Round(time.Millisecond), firstByte.Round(time.Millisecond), resp.Header.Get("Content-Disposition"))
	fmt.Printf("    portal RSS: before %s, peak %s (+%s), after %s; targets < %s and < +%s: %s\n",
		mib(before), mib(peak.Load()), mib(growth), mib(after), targetExport, mib(targetExportGrowth), verdict)
	return nil
}

// measureVerify runs `portal audit verify` and reports its time and memory.
func measureVerify(ctx context.Context, bin, dbURL string) error {
	cmd := exec.CommandContext(ctx, bin, "audit", "verify")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	for line := range strings.Lines(out.String()) {
		fmt.Print("  | ", line)
	}
	if err != nil {
		return fmt.Errorf("portal audit verify: %w", err)
	}
	var maxRSS int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss << 10 // kB on Linux
	}
	fmt.Printf("  wall clock %s (process start included), peak RSS %s, exit status %d\n",
		took.Round(time.Millisecond), mib(maxRSS), cmd.ProcessState.ExitCode())
	return nil
}
