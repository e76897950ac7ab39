package server

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// metricValue is the value of the series named exactly series (name and
// labels as exposed) in p's /metrics; ok is false when it is absent.
func metricValue(t *testing.T, b *browser, series string) (float64, bool) {
	t.Helper()
	r := b.get("/metrics")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", r.StatusCode)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(r.Body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s = %q", series, m[1])
	}
	return v, true
}

func wantMetric(t *testing.T, b *browser, series string, want float64) {
	t.Helper()
	if got, ok := metricValue(t, b, series); !ok || got != want {
		t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
	}
}

// TestMetricsFollowRequestsAndCredentials walks a request through the portal
// over HTTP and reads, at each step, what an operator's alerts would: pending
// requests and their age, credentials active, expiring within 14 days and
// revoked, and the issuance latency.
func TestMetricsFollowRequestsAndCredentials(t *testing.T) {
	t.Parallel()
	p, alice, _, sam := newScene(t)
	p.addCluster("2i2c")
	scraper := p.browser()

	wantMetric(t, scraper, `portal_requests_pending{cluster="awi-ciroh"}`, 0)
	wantMetric(t, scraper, `portal_requests_pending_oldest_age_seconds{cluster="awi-ciroh"}`, 0)
	wantMetric(t, scraper, `portal_credential_issuance_latency_seconds_count`, 0)

	reqID := alice.requestAccess("awi-ciroh", newKey(t).Recipient().String(), "Dashboards for the research team.")
	// As if it had waited two hours: the age an alert on a stale queue reads.
	p.exec(`UPDATE requests SET created_at = now() - interval '2 hours' WHERE id = $1`, reqID)
	wantMetric(t, scraper, `portal_requests_pending{cluster="awi-ciroh"}`, 1)
	wantMetric(t, scraper, `portal_requests_pending{cluster="2i2c"}`, 0)
	if age, _ := metricValue(t, scraper, `portal_requests_pending_oldest_age_seconds{cluster="awi-ciroh"}`); age < 7200 || age > 7300 {
		t.Errorf("oldest pending request's age %v s, want about 7200", age)
	}

	sam.approve(reqID, "")
	wantMetric(t, scraper, `portal_requests_pending{cluster="awi-ciroh"}`, 0)
	wantMetric(t, scraper, `portal_credentials{cluster="awi-ciroh",state="active"}`, 1)
	wantMetric(t, scraper, `portal_credentials{cluster="awi-ciroh",state="revoked"}`, 0)
	wantMetric(t, scraper, `portal_credentials_expiring_soon{cluster="awi-ciroh"}`, 0)
	wantMetric(t, scraper, `portal_credential_issuance_latency_seconds_count`, 1)
	// Two hours from request to credential: in the 4 h bucket, not the 1 h one.
	wantMetric(t, scraper, `portal_credential_issuance_latency_seconds_bucket{le="3600"}`, 0)
	wantMetric(t, scraper, `portal_credential_issuance_latency_seconds_bucket{le="14400"}`, 1)

	credID := p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)
	p.exec(`UPDATE credentials SET expires_at = now() + interval '3 days' WHERE id = $1`, credID)
	wantMetric(t, scraper, `portal_credentials_expiring_soon{cluster="awi-ciroh"}`, 1)

	if r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", credID), `{"reason":"no longer needed"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Body)
	}
	wantMetric(t, scraper, `portal_credentials{cluster="awi-ciroh",state="active"}`, 0)
	wantMetric(t, scraper, `portal_credentials{cluster="awi-ciroh",state="revoked"}`, 1)
	wantMetric(t, scraper, `portal_credentials_expiring_soon{cluster="awi-ciroh"}`, 0)
}

// TestMetricsShowEachClustersLastAgentSync: a cluster with a sync token
// reports 0 until its agent is answered, then the time of that answer; a
// refused token does not count as a sync. One alert on this catches a
// cluster whose agent stopped.
func TestMetricsShowEachClustersLastAgentSync(t *testing.T) {
	t.Parallel()
	p, _, _, sam := newScene(t)
	p.addCluster("2i2c")
	scraper := p.browser()
	const series = `portal_agent_last_sync_timestamp_seconds{cluster="awi-ciroh"}`
	if _, ok := metricValue(t, scraper, series); ok {
		t.Errorf("%s is reported for a cluster without a sync token, which has no agent to miss", series)
	}
	token := sam.syncToken("awi-ciroh")
	wantMetric(t, scraper, series, 0)

	poll := func(token string) int {
		return p.bearerStatus(http.MethodGet, webconfig.PublicationPath("awi-ciroh"), token)
	}
	if code := poll("not-the-token"); code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d", code)
	}
	wantMetric(t, scraper, series, 0)

	before := time.Now()
	if code := poll(token); code != http.StatusOK {
		t.Fatalf("the agent's poll: %d", code)
	}
	got, _ := metricValue(t, scraper, series)
	if at := time.Unix(0, int64(got*1e9)); at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("last sync at %v, want the poll's time, %v", at, before)
	}
	if _, ok := metricValue(t, scraper, `portal_agent_last_sync_timestamp_seconds{cluster="2i2c"}`); ok {
		t.Error("a cluster without a token reports a last sync")
	}
}
