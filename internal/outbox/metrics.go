package outbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

const (
	// statsTimeout bounds the outbox count a scrape makes: a scrape must
	// answer even when the database does not.
	statsTimeout = 2 * time.Second
	// statsWindow is how far back OutboxStats counts failing messages; the
	// gauges do not use that count, but the call wants a time.
	statsWindow = 7 * 24 * time.Hour
)

// channels are the channels a message is sent by, each reported from the
// start (as 0) so that a rate or an alert has a series to look at.
func channels() []portal.Channel {
	return []portal.Channel{portal.ChannelEmail, portal.ChannelWebhook}
}

// metrics counts what one worker did; queue reads the outbox at scrape time,
// so it covers every replica's messages.
type metrics struct {
	sent, failures, failed *prometheus.CounterVec
	queue                  *queueCollector
}

func newMetrics(st *store.Store) *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"channel"})
		for _, ch := range channels() {
			v.WithLabelValues(string(ch))
		}
		return v
	}
	return &metrics{
		sent: counter("portal_outbox_messages_sent_total",
			"Messages this replica sent, by channel."),
		failures: counter("portal_outbox_delivery_failures_total",
			"Failed attempts at sending a message on this replica, by channel; each is retried until the message fails for good."),
		failed: counter("portal_outbox_messages_failed_total",
			"Messages this replica gave up on after their retries ran out, by channel."),
		queue: &queueCollector{
			st: st,
			queued: prometheus.NewDesc("portal_outbox_messages_queued",
				"Messages waiting in the outbox to be sent, by channel, across replicas.", []string{"channel"}, nil),
			oldest: prometheus.NewDesc("portal_outbox_oldest_queued_age_seconds",
				"Age of the oldest message waiting in the outbox; 0 when none waits.", nil, nil),
		},
	}
}

// Collectors returns the worker's metrics, for registering with a
// prometheus.Registerer: counters of messages sent, failed attempts and
// messages given up on, by channel, and gauges of the outbox's queue, read
// from the database at each scrape.
func (w *Worker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.m.sent, w.m.failures, w.m.failed, w.m.queue}
}

// queueCollector reports the outbox's queue as the database holds it when
// scraped.
type queueCollector struct {
	st             *store.Store
	queued, oldest *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queued
	ch <- c.oldest
}

// Collect leaves the gauges out when the database does not answer: the rest
// of the scrape (this replica's counters, the process) still says something,
// and an absent series is what an alert on a stuck queue should not mistake
// for an empty one. The error is not logged: every scrape would repeat what
// the readiness check already reports.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	now := time.Now()
	stats, err := c.st.OutboxStats(ctx, now.Add(-statsWindow))
	if err != nil {
		return
	}
	for _, channel := range channels() {
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(stats.Queued[channel]), string(channel))
	}
	age := 0.0
	if stats.OldestQueued != nil {
		age = max(now.Sub(*stats.OldestQueued).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
