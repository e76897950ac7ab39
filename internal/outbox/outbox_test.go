package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/logtest"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/smtptest"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// quiet is a logger for tests that do not read the log.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// emails returns n messages to n people, as the workflow writes them.
func emails(n int) []*portal.Message {
	ms := make([]*portal.Message, n)
	for i := range ms {
		ms[i] = &portal.Message{
			Event: portal.ActionCredentialIssued, Audience: portal.AudienceCustomer, Channel: portal.ChannelEmail,
			Recipient: fmt.Sprintf("person%d@example.org", i),
			Subject:   "Your credential is ready", Text: "Download it at https://portal.example.org/credentials/1\n",
			HTML: `<p>Download it <a href="https://portal.example.org/credentials/1">here</a>.</p>`,
		}
	}
	return ms
}

// staffPost returns a message for the staff webhook.
func staffPost(text string) *portal.Message {
	return &portal.Message{
		Event: portal.ActionRequestCreated, Audience: portal.AudienceStaff, Channel: portal.ChannelWebhook,
		Subject: "New request", Text: text,
	}
}

// queue writes ms to the outbox of st.
func queue(t testing.TB, st *store.Store, ms ...*portal.Message) {
	t.Helper()
	if err := st.QueueMessages(context.Background(), ms...); err != nil {
		t.Fatal(err)
	}
}

// message reads message id back from the outbox.
func message(t testing.TB, st *store.Store, id int64) *portal.Message {
	t.Helper()
	m, err := st.MessageByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSent waits until every one of ms is sent.
func waitSent(t testing.TB, st *store.Store, ms ...*portal.Message) {
	t.Helper()
	waitFor(t, 20*time.Second, "the messages to be sent", func() bool {
		for _, m := range ms {
			if message(t, st, m.ID).Status != portal.MessageSent {
				return false
			}
		}
		return true
	})
}

// run starts w.Run and returns a function that stops it and waits for it
// to return; the test also stops it when it ends.
func run(t testing.TB, w *Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	stop = func() {
		t.Helper()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10 s of its context ending")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestWorkerRetries(t *testing.T) {
	t.Parallel()
	st := store.New(pgtest.New(t))
	h := newHookReceiver(t, func(n int, _ string) (int, string) {
		if n <= 2 {
			return http.StatusServiceUnavailable, fmt.Sprintf("failure %d", n)
		}
		return http.StatusOK, "ok"
	})
	m := staffPost("Ada asked for a credential")
	queue(t, st, m)
	w := NewWorker(st, map[portal.Channel]Sender{portal.ChannelWebhook: newWebhook(t, h)}, Options{
		FirstRetry: 5 * time.Millisecond, MaxRetry: 20 * time.Millisecond, Poll: time.Second, Log: quiet(),
	})
	run(t, w)
	waitSent(t, st, m)

	got := message(t, st, m.ID)
	if got.Attempts != 3 {
		t.Errorf("attempts = %d; want 3", got.Attempts)
	}
	if !strings.Contains(got.LastError, "503") || !strings.Contains(got.LastError, "failure 2") {
		t.Errorf("last error = %q; want the second failure's, 503 failure 2", got.LastError)
	}
	checkNoURL(t, "last error", got.LastError, h)
	if n := len(h.received()); n != 3 {
		t.Errorf("the webhook was posted to %d times; want 3", n)
	}
}

func TestWorkerGivesUp(t *testing.T) {
	t.Parallel()
	refusing := func(int, string) (int, string) { return http.StatusNotFound, "no_service" }
	tests := []struct {
		name    string
		msg     *portal.Message
		senders func(h *hookReceiver) map[portal.Channel]Sender
		want    []string // parts of the last error
	}{
		{
			name: "the webhook always refuses", msg: staffPost("Ada asked for a credential"),
			senders: func(h *hookReceiver) map[portal.Channel]Sender {
				return map[portal.Channel]Sender{portal.ChannelWebhook: newWebhook(t, h)}
			},
			want: []string{"404", "no_service"},
		},
		{
			name: "no sender for the channel", msg: emails(1)[0],
			senders: func(h *hookReceiver) map[portal.Channel]Sender {
				return map[portal.Channel]Sender{portal.ChannelWebhook: newWebhook(t, h)}
			},
			want: []string{"no sender configured for channel email"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := store.New(pgtest.New(t))
			h := newHookReceiver(t, refusing)
			queue(t, st, tt.msg)
			var logs logtest.Buffer
			w := NewWorker(st, tt.senders(h), Options{
				GiveUpAfter: time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			sent, err := w.DeliverDue(context.Background())
			if err != nil || sent != 0 {
				t.Fatalf("DeliverDue = %d, %v; want 0 sent and no error", sent, err)
			}
			got := message(t, st, tt.msg.ID)
			if got.Status != portal.MessageFailed {
				t.Errorf("status = %s; want failed", got.Status)
			}
			for _, want := range tt.want {
				if !strings.Contains(got.LastError, want) {
					t.Errorf("last error = %q; want it to say %q", got.LastError, want)
				}
			}
			checkNoURL(t, "last error", got.LastError, h)
			checkNoURL(t, "the log", logs.String(), h)
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "message_id="+strconv.FormatInt(got.ID, 10)) {
				t.Errorf("log = %q; want an error line naming message %d", logs.String(), got.ID)
			}
		})
	}
}

func TestTwoWorkers(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	// The second replica has a pool of its own on the same database.
	other, err := pgxpool.NewWithConfig(context.Background(), pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	st, st2 := store.New(pool), store.New(other)

	srv := smtptest.Start(t, smtptest.Options{User: "portal", Password: "pw"})
	ms := emails(200)
	queue(t, st, ms...)
	opts := Options{Poll: 50 * time.Millisecond, Log: quiet()}
	for _, s := range []*store.Store{st, st2} {
		run(t, NewWorker(s, map[portal.Channel]Sender{portal.ChannelEmail: newMailer(t, srv.URL("portal:pw"))}, opts))
	}
	waitSent(t, st, ms...)

	got := srv.Count(t, "X-Portal-Message")
	for _, m := range ms {
		if n := got[strconv.FormatInt(m.ID, 10)]; n != 1 {
			t.Errorf("message %d delivered %d times; want once", m.ID, n)
		}
	}
	if len(got) != len(ms) {
		t.Errorf("the server got %d distinct messages; want %d", len(got), len(ms))
	}
}

func TestDeadReplica(t *testing.T) {
	t.Parallel()
	st := store.New(pgtest.New(t))
	srv := smtptest.Start(t, smtptest.Options{})
	ms := emails(3)
	queue(t, st, ms...)
	const lease = 500 * time.Millisecond
	// A replica claims the messages and dies holding them.
	claimed := time.Now()
	if dead, err := st.ClaimMessages(context.Background(), 10, lease); err != nil || len(dead) != len(ms) {
		t.Fatalf("ClaimMessages = %d messages, %v; want %d", len(dead), err, len(ms))
	}
	w := NewWorker(st, map[portal.Channel]Sender{portal.ChannelEmail: newMailer(t, srv.URL(""))},
		Options{Lease: lease, Poll: time.Second, Log: quiet()})
	if sent, err := w.DeliverDue(context.Background()); err != nil || sent != 0 {
		t.Fatalf("DeliverDue while the claims hold = %d, %v; want 0 sent", sent, err)
	}

	run(t, w)
	waitSent(t, st, ms...)
	if took := time.Since(claimed); took < lease {
		t.Errorf("delivered %s after the claim; want no sooner than the lease, %s", took, lease)
	}
	wantDeliveredOnce(t, srv, st, ms, 2, "the dead replica's and the delivery")
}

func TestStopWhileSending(t *testing.T) {
	t.Parallel()
	st := store.New(pgtest.New(t))
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	srv := smtptest.Start(t, smtptest.Options{OnData: func(*smtptest.Message) error {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return nil
	}})
	ms := emails(3)
	queue(t, st, ms...)
	w := NewWorker(st, map[portal.Channel]Sender{portal.ChannelEmail: newMailer(t, srv.URL(""))},
		Options{Poll: time.Second, Log: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()

	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first message never reached the server")
	}
	cancel() // SIGTERM
	select {
	case <-done:
		t.Fatal("Run returned while a message was being sent")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the message in hand was sent")
	}

	if got := message(t, st, ms[0].ID); got.Status != portal.MessageSent {
		t.Errorf("the message in hand is %s; want sent", got.Status)
	}
	for _, m := range ms[1:] {
		got := message(t, st, m.ID)
		if got.Status != portal.MessageQueued || got.Attempts != 0 || got.LastError != "" ||
			got.NextAttemptAt.After(time.Now().Add(time.Second)) {
			t.Errorf("message %d not started: %s, %d attempts, due %s, error %q; want queued again, due now, 0 attempts",
				m.ID, got.Status, got.Attempts, got.NextAttemptAt, got.LastError)
		}
	}
	if n := len(srv.Received()); n != 1 {
		t.Errorf("the server got %d messages; want only the one in hand", n)
	}
}

func TestWake(t *testing.T) {
	t.Parallel()
	st := store.New(pgtest.New(t))
	h := newHookReceiver(t, nil)
	wake := make(chan struct{}, 1)
	// Without the signal, the worker would not look again for an hour.
	w := NewWorker(st, map[portal.Channel]Sender{portal.ChannelWebhook: newWebhook(t, h)},
		Options{Poll: time.Hour, Wake: wake, Log: quiet()})
	run(t, w)
	time.Sleep(100 * time.Millisecond) // asleep, the outbox empty
	m := staffPost("Ada asked for a credential")
	queue(t, st, m)
	wake <- struct{}{}
	waitFor(t, 5*time.Second, "the message to be sent after the wake-up", func() bool {
		return message(t, st, m.ID).Status == portal.MessageSent
	})
}

func TestRunOutlastsTheDatabase(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	st := store.New(pool)
	pool.Close() // the database is gone
	var logs logtest.Buffer
	w := NewWorker(st, map[portal.Channel]Sender{portal.ChannelWebhook: newWebhook(t, newHookReceiver(t, nil))},
		Options{Poll: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	stop := run(t, w)
	waitFor(t, 5*time.Second, "Run to try again after a database error", func() bool {
		return strings.Count(logs.String(), "cannot deliver messages now") >= 3
	})
	stop()
}

func TestLeaseBudget(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	other, err := pgxpool.NewWithConfig(context.Background(), pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	st := store.New(pool)
	srv := smtptest.Start(t, smtptest.Options{OnData: func(*smtptest.Message) error {
		time.Sleep(400 * time.Millisecond) // a slow mail server
		return nil
	}})
	ms := emails(8)
	queue(t, st, ms...)
	// A worker claims all eight, but its lease leaves time for five; and it
	// starts only those it can finish within the lease, three. Were it to
	// send them all, the other worker would take the last ones when their
	// claims lapse, and send them too.
	opts := Options{Lease: 2 * time.Second, SendTimeout: time.Second, Poll: 50 * time.Millisecond, Log: quiet()}
	for _, s := range []*store.Store{st, store.New(other)} {
		run(t, NewWorker(s, map[portal.Channel]Sender{portal.ChannelEmail: newMailer(t, srv.URL(""))}, opts))
	}
	waitSent(t, st, ms...)
	time.Sleep(opts.SendTimeout) // a second sending of any has ended by now
	wantDeliveredOnce(t, srv, st, ms, 1, "a hand-back does not count")
}

// wantDeliveredOnce fails the test unless each of ms reached srv exactly
// once, after the given number of attempts (why says whose).
func wantDeliveredOnce(t *testing.T, srv *smtptest.Server, st *store.Store, ms []*portal.Message, attempts int, why string) {
	t.Helper()
	got := srv.Count(t, "X-Portal-Message")
	for _, m := range ms {
		if n := got[strconv.FormatInt(m.ID, 10)]; n != 1 {
			t.Errorf("message %d delivered %d times; want once", m.ID, n)
		}
		if a := message(t, st, m.ID).Attempts; a != attempts {
			t.Errorf("message %d: attempts = %d; want %d: %s", m.ID, a, attempts, why)
		}
	}
}

func TestRetryIn(t *testing.T) {
	t.Parallel()
	w := NewWorker(nil, nil, Options{FirstRetry: time.Minute, MaxRetry: time.Hour})
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 45 * time.Second, 75 * time.Second},
		{2, 90 * time.Second, 150 * time.Second},
		{3, 3 * time.Minute, 5 * time.Minute},
		{30, 30 * time.Minute, time.Hour},
		{1000, 30 * time.Minute, time.Hour},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.attempt), func(t *testing.T) {
			t.Parallel()
			for range 100 {
				if d := w.retryIn(tt.attempt); d < tt.min || d > tt.max {
					t.Fatalf("retry after attempt %d in %s; want %s to %s", tt.attempt, d, tt.min, tt.max)
				}
			}
		})
	}
}
