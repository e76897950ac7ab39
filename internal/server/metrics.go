package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/2i2c-org/credential-portal/internal/store"
)

// metrics are the portal's own Prometheus metrics, in a registry of the
// Server's (no global state), served at /metrics.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	agents   *agentContacts
}

// newMetrics makes the server's metrics and registers them, with extra,
// other parts' collectors, and the figures read from st at each scrape. It
// fails if two collectors clash.
func newMetrics(st *store.Store, extra ...prometheus.Collector) (*metrics, error) {
	m := &metrics{
		agents:   &agentContacts{last: map[string]time.Time{}},
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portal_http_requests_total", Help: "HTTP requests answered, by route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portal_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route (long-polls included).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "route"}),
	}
	own := []prometheus.Collector{m.requests, m.duration, newStateCollector(st, m.agents),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	for _, c := range append(own, extra...) {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("server: metrics: %w", err)
		}
	}
	return m, nil
}

// measure counts every request by its route pattern, never its path: paths
// hold IDs, and label values must stay few.
func (s *Server) measure(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // the status is the error handler's to decide
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request().Method
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
			http.MethodDelete, http.MethodOptions:
		default:
			method = "OTHER" // any token is a method; label values must stay few
		}
		s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
		s.metrics.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		return nil
	}
}

func (s *Server) serveMetrics() echo.HandlerFunc {
	return echo.WrapHandler(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
}

// MetricsHandler serves /metrics alone, for PORTAL_METRICS_LISTEN: a listener
// of its own keeps the figures off the public Ingress.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return mux
}

// agentContacts is when this replica last answered each cluster's agent. It
// is the replica's own view: an agent's long-polls reach one replica or
// another, so the cluster's last sync is the max over the replicas.
type agentContacts struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (a *agentContacts) seen(cluster string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last[cluster] = at
}

func (a *agentContacts) at(cluster string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[cluster]
}

const (
	// stateTimeout bounds the queries of a scrape: a scrape must answer even
	// when the database does not.
	stateTimeout = 2 * time.Second
	// expiringWithin is how soon an expiry counts as coming: the customer's
	// first reminder is due then, and staff may want to see renewals coming.
	expiringWithin = 14 * 24 * time.Hour
)

// issuanceBuckets span an auto-approval (under a second) to a request
// that waited out its two weeks.
var issuanceBuckets = []float64{1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400}

// stateCollector reports what the database holds when scraped: pending
// requests, credentials by state, issuance latency, and when each cluster's
// agent was last answered. Every replica reports the same database figures,
// so alert on max(), not sum().
type stateCollector struct {
	st                                     *store.Store
	agents                                 *agentContacts
	pending, pendingAge, credentials, soon *prometheus.Desc
	issuance, agentSync                    *prometheus.Desc
}

func newStateCollector(st *store.Store, agents *agentContacts) *stateCollector {
	cl := []string{"cluster"}
	return &stateCollector{st: st, agents: agents,
		pending: prometheus.NewDesc("portal_requests_pending",
			"Requests waiting for a decision, by cluster.", cl, nil),
		pendingAge: prometheus.NewDesc("portal_requests_pending_oldest_age_seconds",
			"How long the oldest pending request of the cluster has waited; 0 when none waits.", cl, nil),
		credentials: prometheus.NewDesc("portal_credentials",
			"Credentials by cluster and state: active (published to the cluster), revoked, expired.", []string{"cluster", "state"}, nil),
		soon: prometheus.NewDesc("portal_credentials_expiring_soon",
			"Active credentials of the cluster that expire within 14 days.", cl, nil),
		issuance: prometheus.NewDesc("portal_credential_issuance_latency_seconds",
			"Time from a request to its credential, over every credential issued.", nil, nil),
		agentSync: prometheus.NewDesc("portal_agent_last_sync_timestamp_seconds",
			"When this replica last answered the agent of a cluster that has a sync token, as a Unix time; 0 if it has not since it started. Take max over the replicas.", cl, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.pendingAge, c.credentials, c.soon, c.issuance, c.agentSync} {
		ch <- d
	}
}

// Collect leaves out what the database did not answer, like the outbox's
// queue: an absent series is not mistaken for a zero. The error is not
// logged, since every scrape would repeat what /readyz reports.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	c.collectClusters(ctx, ch)
	c.collectIssuance(ctx, ch)
}

func (c *stateCollector) collectClusters(ctx context.Context, ch chan<- prometheus.Metric) {
	all, err := c.st.ClusterStats(ctx, expiringWithin)
	if err != nil {
		return
	}
	for _, r := range all {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(r.Pending), r.Name)
		ch <- prometheus.MustNewConstMetric(c.pendingAge, prometheus.GaugeValue, r.OldestPending.Seconds(), r.Name)
		for state, n := range map[string]int64{"active": r.Active, "revoked": r.Revoked, "expired": r.Expired} {
			ch <- prometheus.MustNewConstMetric(c.credentials, prometheus.GaugeValue, float64(n), r.Name, state)
		}
		ch <- prometheus.MustNewConstMetric(c.soon, prometheus.GaugeValue, float64(r.ExpiringSoon), r.Name)
		// Only clusters that have an agent: one without a token has none to miss.
		if r.HasAgent {
			var ts float64
			if at := c.agents.at(r.Name); !at.IsZero() {
				ts = float64(at.UnixNano()) / 1e9
			}
			ch <- prometheus.MustNewConstMetric(c.agentSync, prometheus.GaugeValue, ts, r.Name)
		}
	}
}

// collectIssuance reads the histogram from the database, not from this
// replica's memory: it covers every replica's approvals and survives
// restarts, and stays cumulative since credentials are never deleted.
func (c *stateCollector) collectIssuance(ctx context.Context, ch chan<- prometheus.Metric) {
	count, sum, counts, err := c.st.IssuanceLatencies(ctx, issuanceBuckets)
	if err != nil {
		return
	}
	buckets := make(map[float64]uint64, len(issuanceBuckets))
	for i, b := range issuanceBuckets {
		buckets[b] = uint64(counts[i])
	}
	ch <- prometheus.MustNewConstHistogram(c.issuance, uint64(count), sum, buckets)
}
