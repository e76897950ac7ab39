package server

import (
	"net/http"
	"strings"
	"testing"
)

func TestProbesAndMetrics(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	b := p.browser()
	if r := b.get("/healthz"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"status":"ok"`) {
		t.Errorf("/healthz: %d %s", r.StatusCode, r.Body)
	}
	if r := b.get("/readyz"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"status":"ready"`) {
		t.Errorf("/readyz on a migrated database: %d %s", r.StatusCode, r.Body)
	}
	b.get("/")
	b.get("/requests/12345")
	r := b.get("/metrics")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", r.StatusCode)
	}
	for _, want := range []string{
		`portal_http_requests_total{method="GET",route="/",status="200"} 1`,
		`route="/requests/:id"`, // by route pattern, never the path with its ID
		"portal_http_request_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(r.Body, "12345") {
		t.Error("/metrics labels hold a path with an ID")
	}
}
