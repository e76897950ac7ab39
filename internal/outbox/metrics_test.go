package outbox

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// gather scrapes reg as Prometheus would, keyed name{channel}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			}
		}
	}
	return got
}

func TestCollectors(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	st := store.New(pool)
	h := newHookReceiver(t, func(_ int, text string) (int, string) {
		if strings.Contains(text, "refused") {
			return http.StatusInternalServerError, "internal_error"
		}
		return http.StatusOK, "ok"
	})
	queue(t, st, staffPost("this one goes through"), staffPost("this one is refused"))
	w := NewWorker(st, map[portal.Channel]Sender{portal.ChannelWebhook: newWebhook(t, h)},
		Options{FirstRetry: time.Hour, Log: quiet()})
	if sent, err := w.DeliverDue(context.Background()); err != nil || sent != 1 {
		t.Fatalf("DeliverDue = %d, %v; want 1 sent", sent, err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(w.Collectors()...)

	got := gather(t, reg)
	want := map[string]float64{
		"portal_outbox_messages_sent_total{webhook}":     1,
		"portal_outbox_messages_sent_total{email}":       0,
		"portal_outbox_delivery_failures_total{webhook}": 1,
		"portal_outbox_messages_failed_total{webhook}":   0,
		"portal_outbox_messages_queued{webhook}":         1, // the refused one, waiting to be retried
		"portal_outbox_messages_queued{email}":           0,
	}
	for key, v := range want {
		if g, ok := got[key]; !ok || g != v {
			t.Errorf("%s = %v (reported: %t); want %v", key, g, ok, v)
		}
	}
	if age, ok := got["portal_outbox_oldest_queued_age_seconds"]; !ok || age < 0 || age > 60 {
		t.Errorf("oldest queued age = %v (reported: %t); want a few seconds", age, ok)
	}

	// With the database gone, a scrape still answers, with the counters.
	pool.Close()
	got = gather(t, reg)
	if got["portal_outbox_messages_sent_total{webhook}"] != 1 {
		t.Errorf("with the database down, sent = %v; want 1", got["portal_outbox_messages_sent_total{webhook}"])
	}
	if _, ok := got["portal_outbox_messages_queued{webhook}"]; ok {
		t.Error("with the database down, the queue gauge is reported; want it left out")
	}
}
