package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxErrorsShown is how many failed requests a phase describes in full.
const maxErrorsShown = 5

// recorder collects the time and outcome of every request of a phase, by
// route pattern. It is safe for concurrent use.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	end   time.Time
	// busy is the time the phase ran, over its slices (pause, resume);
	// zero when it ran in one piece from start to end.
	busy   time.Duration
	paused bool
	routes map[string]*routeStats
	// failures describes the first few errors: route, path, status.
	failures []string
}

type routeStats struct {
	times  []time.Duration
	bytes  int64 // of the answers' bodies
	errors int
}

func newRecorder() *recorder {
	return &recorder{start: time.Now(), routes: map[string]*routeStats{}}
}

// record notes one request: route is its pattern (GET /requests/:id), path
// what was asked for. A transport error, or any status but 2xx and 3xx, is
// an error.
func (r *recorder) record(route, path string, took time.Duration, status int, size int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.routes[route]
	if st == nil {
		st = &routeStats{}
		r.routes[route] = st
	}
	st.times = append(st.times, took)
	st.bytes += int64(size)
	if err == nil && status >= 200 && status < 400 {
		return
	}
	st.errors++
	if len(r.failures) < maxErrorsShown {
		what := fmt.Sprintf("status %d", status)
		if err != nil {
			what = err.Error()
		}
		r.failures = append(r.failures, fmt.Sprintf("%s (%s): %s", route, path, what))
	}
}

// stop ends the phase: throughputs are over the time until now, or over
// the slices it ran in.
func (r *recorder) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.end = time.Now()
	if !r.paused && r.busy > 0 {
		r.busy += r.end.Sub(r.start)
		r.paused = true
	}
}

// pause ends a slice of a phase run in slices; resume starts the next.
func (r *recorder) pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.end = time.Now()
	r.busy += r.end.Sub(r.start)
	r.paused = true
}

func (r *recorder) resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start, r.paused = time.Now(), false
}

// seconds is how long the phase ran.
func (r *recorder) seconds() float64 {
	if r.busy > 0 {
		return r.busy.Seconds()
	}
	return r.end.Sub(r.start).Seconds()
}

// routeSummary is one line of the table.
type routeSummary struct {
	route          string
	requests       int
	perSecond      float64
	p50, p99, max  time.Duration
	meanBytes      int64
	errors         int
	pageWithTarget bool // a GET page, held to the p99 target
}

func (r *recorder) summary() []routeSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := r.seconds()
	var out []routeSummary
	for _, route := range slices.Sorted(maps.Keys(r.routes)) {
		st := r.routes[route]
		ts := slices.Clone(st.times)
		slices.Sort(ts)
		out = append(out, routeSummary{
			route: route, requests: len(ts), perSecond: float64(len(ts)) / secs,
			p50: quantile(ts, 0.50), p99: quantile(ts, 0.99), max: ts[len(ts)-1], errors: st.errors,
			meanBytes:      st.bytes / int64(len(ts)),
			pageWithTarget: strings.HasPrefix(route, "GET "),
		})
	}
	return out
}

// quantile returns the q-quantile of sorted, by the nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// total returns the requests and errors of every route.
func (r *recorder) total() (requests, errors int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.routes {
		requests += len(st.times)
		errors += st.errors
	}
	return requests, errors
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// printTable writes the phase's routes as a table, then its first errors.
func (r *recorder) printTable(w io.Writer) {
	fmt.Fprintf(w, "%-46s %9s %9s %9s %9s %9s %7s %8s\n", "route", "requests", "per s", "p50 ms", "p99 ms", "max ms", "errors", "KB")
	for _, s := range r.summary() {
		fmt.Fprintf(w, "%-46s %9d %9.1f %9.2f %9.2f %9.2f %7d %8.1f\n", s.route, s.requests, s.perSecond, msf(s.p50), msf(s.p99), msf(s.max), s.errors, float64(s.meanBytes)/1000)
	}
	if len(r.failures) > 0 {
		_, errs := r.total()
		fmt.Fprintf(w, "first errors (of %d):\n", errs)
		for _, f := range r.failures {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
}
