package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/logtest"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
)

// TestServeMetricsOnTheirOwnAddress: with PORTAL_METRICS_LISTEN, /metrics is
// served there, with the portal's figures, and no longer on the public
// address, which the Ingress exposes.
func TestServeMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	var stderr logtest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	dbURL := pgtest.URL(t)
	go func() {
		getenv := func(k string) string {
			return complete(map[string]string{"DATABASE_URL": dbURL, "PORTAL_LISTEN": addr,
				"PORTAL_METRICS_LISTEN": metricsAddr, "PORTAL_BASE_URL": "http://" + addr})[k]
		}
		done <- run(ctx, []string{"serve"}, env{getenv: getenv, stdout: io.Discard, stderr: &stderr})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	})
	waitFor(t, 10*time.Second, "the portal to listen", func() bool { return status("http://"+addr+"/healthz") == 200 })
	waitFor(t, 10*time.Second, "the metrics address to answer", func() bool { return status("http://"+metricsAddr+"/metrics") == 200 })

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"portal_credential_issuance_latency_seconds_count", "portal_outbox_messages_queued", "portal_http_requests_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the metrics address lacks %s", want)
		}
	}
	if got := status("http://" + addr + "/metrics"); got != http.StatusNotFound {
		t.Errorf("/metrics on the public address: %d, want 404 once PORTAL_METRICS_LISTEN is set", got)
	}
	if got := status("http://" + metricsAddr + "/healthz"); got != http.StatusNotFound {
		t.Errorf("the metrics address serves /healthz (%d); it serves /metrics alone", got)
	}
}
