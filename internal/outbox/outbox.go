// Package outbox delivers the messages the workflow writes to the outbox: a
// worker on every replica claims due messages, sends each by its channel
// (email over SMTP, a Slack-compatible webhook), and records the outcome,
// retrying with backoff.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// Sender delivers one message by one channel. Send returns nil once the
// message is handed over (accepted by the mail server, answered 2xx by the
// webhook); an error is an attempt that failed, to be retried. Its text is
// shown to staff, so it never holds a password or a secret URL.
type Sender interface {
	Send(ctx context.Context, m *portal.Message) error
}

// The defaults of Options.
const (
	defaultBatch       = 10
	defaultLease       = 5 * time.Minute
	defaultFirstRetry  = time.Minute
	defaultMaxRetry    = time.Hour
	defaultGiveUpAfter = 24 * time.Hour
	defaultSendTimeout = 30 * time.Second
	defaultPoll        = 30 * time.Second
)

const (
	// retryJitter is how far, as a fraction either way, a retry strays from
	// its nominal time, so that messages failing together (a mail server
	// down) do not all come back in the same second.
	retryJitter = 0.25
	// maxWhy bounds the error kept on a message: enough for an SMTP reply or
	// the start of a webhook's answer, not a page of HTML.
	maxWhy = 500
	// recordTimeout bounds a claim, the write of an outcome and a hand-back.
	// They run even while the worker stops, so they must not hang on a
	// database that has gone away.
	recordTimeout = 10 * time.Second
	// errorPause is the first pause after a database error in Run; pauses
	// double from there, up to Options.Poll.
	errorPause = time.Second
	// notYetPause is the first pause when a message is due but none could be
	// claimed: another worker is claiming it this instant, or the database's
	// clock is behind this one's. Pauses double from there, up to
	// Options.Poll, so neither case spins.
	notYetPause = 10 * time.Millisecond
)

// Options tune a Worker. The zero value of each field means its default.
type Options struct {
	// Batch is how many messages are claimed at a time; 10 when 0.
	Batch int
	// Lease is how long a claim holds before another worker may take the
	// message (its worker died); 5 minutes when 0.
	Lease time.Duration
	// FirstRetry is the pause after a message's first failed attempt; later
	// pauses double, with jitter; 1 minute when 0.
	FirstRetry time.Duration
	// MaxRetry caps the pause between two attempts; 1 hour when 0.
	MaxRetry time.Duration
	// GiveUpAfter is how long after it was queued a message is retried: a
	// failure whose retry would come later fails it for good, with its
	// error; 24 hours when 0.
	GiveUpAfter time.Duration
	// SendTimeout bounds one attempt at one message; 30 seconds when 0, and
	// never more than half the Lease. A worker starts a message only while
	// its claim has SendTimeout left to run, and hands the rest of the batch
	// back otherwise, so a slow channel cannot let a claim lapse while its
	// messages wait in hand (and another worker send them too).
	SendTimeout time.Duration
	// Poll is the longest sleep between two looks at the outbox when
	// nothing wakes the worker; 30 seconds when 0.
	Poll time.Duration
	// Wake signals that messages were written (the LISTEN hub); nil when
	// there is none, and then the worker finds them within Poll.
	Wake <-chan struct{}
	// Log receives a warning per failed attempt and an error per message
	// that failed for good; slog.Default() when nil.
	Log *slog.Logger
}

// withDefaults fills in the zero fields of o.
func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Batch <= 0 {
		o.Batch = defaultBatch
	}
	def(&o.Lease, defaultLease)
	def(&o.FirstRetry, defaultFirstRetry)
	def(&o.MaxRetry, defaultMaxRetry)
	def(&o.GiveUpAfter, defaultGiveUpAfter)
	def(&o.SendTimeout, defaultSendTimeout)
	def(&o.Poll, defaultPoll)
	// A send that may outlast half its lease would leave no room for the
	// batch's next message, and one that outlasts the lease lets another
	// worker take the message while it is still being sent.
	o.SendTimeout = min(o.SendTimeout, o.Lease/2)
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Worker delivers the outbox's due messages. Build it with NewWorker; call
// Run once per replica, or DeliverDue for one round. Every replica may run
// one: claims keep them from sending a message twice.
type Worker struct {
	st      *store.Store
	senders map[portal.Channel]Sender
	opts    Options
	log     *slog.Logger
	m       *metrics
}

// NewWorker returns a worker that delivers the messages of st through
// senders, one per channel this replica can send by. A message whose
// channel has no sender counts as a failed attempt, so that staff see it
// fail rather than wait.
func NewWorker(st *store.Store, senders map[portal.Channel]Sender, opts Options) *Worker {
	opts = opts.withDefaults()
	own := make(map[portal.Channel]Sender, len(senders))
	for ch, s := range senders {
		if s != nil {
			own[ch] = s
		}
	}
	return &Worker{st: st, senders: own, opts: opts, log: opts.Log, m: newMetrics(st)}
}

// DeliverDue claims due messages, a batch at a time, and delivers them until
// none is due; it returns how many were sent. A failed attempt is recorded
// on its message and is not an error. The error is the store's, or ctx's
// when ctx ended: then the message in hand is still sent and recorded, and
// the batch's others are handed back to the outbox.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	sent := 0
	for ctx.Err() == nil {
		claimed := time.Now()
		ms, err := w.claim(ctx)
		if err != nil {
			return sent, err
		}
		n, more, err := w.deliverBatch(ctx, ms, claimed)
		sent += n
		// A short batch means nothing else was due when it was claimed,
		// unless some of it was handed back.
		if err != nil || (len(ms) < w.opts.Batch && !more) {
			return sent, err
		}
	}
	return sent, ctx.Err()
}

// claim claims a batch. It runs to its end when ctx ends: a claim
// interrupted after the database made it, its answer lost, would hold its
// messages for the lease; finished, they are handed back.
func (w *Worker) claim(ctx context.Context) ([]*portal.Message, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return w.st.ClaimMessages(ctx, w.opts.Batch, w.opts.Lease)
}

// deliverBatch delivers claimed messages in turn. It hands back those it
// does not start: when ctx ends, after a store error, or when their claim
// has too little time left, and then reports more, since they are due.
func (w *Worker) deliverBatch(ctx context.Context, ms []*portal.Message, claimed time.Time) (sent int, more bool, err error) {
	for i, m := range ms {
		if ctx.Err() != nil {
			return sent, false, errors.Join(w.release(ctx, ms[i:]), ctx.Err())
		}
		if time.Since(claimed)+w.opts.SendTimeout > w.opts.Lease {
			return sent, true, w.release(ctx, ms[i:])
		}
		ok, err := w.deliver(ctx, m)
		if ok {
			sent++
		}
		if err != nil {
			return sent, false, errors.Join(err, w.release(ctx, ms[i+1:]))
		}
	}
	return sent, false, nil
}

// release hands messages that were claimed and not attempted back to the
// outbox, even while ctx ends: otherwise they wait for their lease to run out.
func (w *Worker) release(ctx context.Context, ms []*portal.Message) error {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]int64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return w.st.ReleaseMessages(ctx, ids)
}

// deliver makes one attempt at claimed message m and records its outcome.
// Both run to their end when ctx ends, bounded by their own timeouts: a
// message half sent is better finished, and a message sent must be
// recorded, or it is sent again once its claim lapses. The error is the
// store's; ok reports whether m was sent.
func (w *Worker) deliver(ctx context.Context, m *portal.Message) (ok bool, err error) {
	ch := string(m.Channel)
	var sendErr error
	if s := w.senders[m.Channel]; s == nil {
		sendErr = fmt.Errorf("no sender configured for channel %s", m.Channel)
	} else {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.SendTimeout)
		sendErr = s.Send(sctx, m)
		cancel()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if sendErr == nil {
		w.m.sent.WithLabelValues(ch).Inc()
		return true, w.st.MessageSent(rctx, m.ID)
	}

	w.m.failures.WithLabelValues(ch).Inc()
	why := truncate(sendErr.Error(), maxWhy)
	retryIn := w.retryIn(m.Attempts)
	failed, err := w.st.MessageNotDelivered(rctx, m.ID, why, retryIn, w.opts.GiveUpAfter)
	attrs := []any{"message_id", m.ID, "channel", ch, "event", string(m.Event),
		"recipient", m.RecipientLabel(), "attempt", m.Attempts, "error", why}
	switch {
	case errors.Is(err, portal.ErrNotFound):
		// No longer queued: its claim lapsed during the attempt, and another
		// worker sent it, or it failed for good, meanwhile.
		w.log.Warn("message not delivered, and settled by another worker meanwhile", attrs...)
		return false, nil
	case err != nil:
		return false, err
	case failed:
		w.m.failed.WithLabelValues(ch).Inc()
		w.log.Error("message failed for good: its retries ran out; staff may retry it from the outbox page", attrs...)
	default:
		w.log.Warn("message not delivered; retrying", append(attrs, "retry_in", retryIn.Round(time.Millisecond).String())...)
	}
	return false, nil
}

// retryIn is the pause after failed attempt n: FirstRetry, doubling, up to
// MaxRetry, each jittered by retryJitter. The library jitters after
// capping, so its cap is set that much lower, and a retry never waits
// longer than MaxRetry.
func (w *Worker) retryIn(n int) time.Duration {
	capped := time.Duration(float64(w.opts.MaxRetry) / (1 + retryJitter))
	b := &backoff.ExponentialBackOff{
		InitialInterval:     min(w.opts.FirstRetry, capped),
		RandomizationFactor: retryJitter,
		Multiplier:          2,
		MaxInterval:         capped,
	}
	b.Reset()
	d := b.NextBackOff()
	// 64 doublings pass any cap a time.Duration can hold.
	for i := 1; i < min(n, 64); i++ {
		d = b.NextBackOff()
	}
	return d
}

// Run delivers due messages until ctx ends. Between rounds it sleeps until
// Options.Wake fires, the next message is due, or Options.Poll has passed,
// whichever comes first. A store error is logged and the round tried again
// after a pause. When ctx ends, the message being sent is finished and
// recorded, the batch's others are handed back, and Run returns.
func (w *Worker) Run(ctx context.Context) {
	failures := w.pauses(errorPause)
	notYet := w.pauses(notYetPause)
	for ctx.Err() == nil {
		_, err := w.DeliverDue(ctx)
		if ctx.Err() != nil {
			return
		}
		var pause time.Duration
		if err == nil {
			pause, err = w.untilDue(ctx)
		}
		switch {
		case err != nil:
			pause = failures.NextBackOff()
			w.log.Warn("cannot deliver messages now; trying again", "error", err.Error(),
				"retry_in", pause.Round(time.Millisecond).String())
		case pause <= 0:
			// Due, yet DeliverDue found nothing to claim.
			failures.Reset()
			pause = notYet.NextBackOff()
		default:
			failures.Reset()
			notYet.Reset()
		}
		w.sleep(ctx, pause)
	}
}

// pauses returns pauses from first, doubling, up to Options.Poll.
func (w *Worker) pauses(first time.Duration) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     min(first, w.opts.Poll),
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         w.opts.Poll,
	}
	b.Reset()
	return b
}

// untilDue is how long until the next queued message is due, at most
// Options.Poll; 0 or less when one is due now.
func (w *Worker) untilDue(ctx context.Context) (time.Duration, error) {
	at, ok, err := w.st.NextMessageDue(ctx)
	if err != nil || !ok {
		return w.opts.Poll, err
	}
	return min(time.Until(at), w.opts.Poll), nil
}

// sleep waits for d, for a wake-up signal, or for ctx to end.
func (w *Worker) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-w.opts.Wake:
	}
}

// truncate cuts s to at most n bytes, at a character's boundary, marking
// the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + mark
}
