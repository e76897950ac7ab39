package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/logtest"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/smtptest"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// TestTwoPortalsDeliverEachMessageOnce runs two `portal serve` processes on
// one database and one mail relay: 200 messages are delivered, none twice
// and none missing, and both stop cleanly on SIGTERM.
func TestTwoPortalsDeliverEachMessageOnce(t *testing.T) {
	t.Parallel()
	bin := buildPortal(t)
	dbURL := pgtest.URL(t)
	relay := smtptest.Start(t, smtptest.Options{User: "portal", Password: "relay-pw"})
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	var portals []*exec.Cmd
	var logs []*logtest.Buffer
	for range 2 {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(),
			"DATABASE_URL="+dbURL, "PORTAL_LISTEN="+addr, "PORTAL_BASE_URL=http://"+addr,
			"PORTAL_OIDC_ISSUER=http://127.0.0.1:1/unreachable", "PORTAL_OIDC_CLIENT_ID=portal",
			"PORTAL_SMTP_URL="+relay.URL("portal:relay-pw"), "PORTAL_MAIL_FROM=Portal <portal@example.org>",
			"PORTAL_LOG_LEVEL=warn")
		buf := &logtest.Buffer{}
		cmd.Stderr = buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // before the database is dropped
		waitFor(t, 15*time.Second, "portal "+addr+" to listen", func() bool { return status("http://"+addr+"/healthz") == 200 })
		portals, logs = append(portals, cmd), append(logs, buf)
	}

	const n = 200
	ms := make([]*portal.Message, n)
	for i := range ms {
		ms[i] = &portal.Message{Event: portal.ActionRequestCreated, Audience: portal.AudienceStaff, Channel: portal.ChannelEmail,
			Recipient: fmt.Sprintf("staff-%d@2i2c.org", i), Subject: fmt.Sprintf("Request #%d waits", i), Text: "A request waits.\n"}
	}
	if err := store.New(pool).QueueMessages(context.Background(), ms...); err != nil {
		t.Fatal(err)
	}
	relay.WaitFor(t, n, 30*time.Second)
	waitFor(t, 10*time.Second, "every message to be marked sent", func() bool {
		var sent int
		pool.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE status = 'sent'`).Scan(&sent)
		return sent == n
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive by now
	counts := relay.Count(t, "X-Portal-Message")
	if len(counts) != n {
		t.Errorf("%d distinct messages delivered, want %d", len(counts), n)
	}
	for id, c := range counts {
		if c != 1 {
			t.Errorf("message %s delivered %d times", id, c)
		}
	}

	for i, cmd := range portals {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("portal %d exited with %v after SIGTERM:\n%s", i, err, logs[i].String())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("portal %d did not stop after SIGTERM", i)
		}
		if strings.Contains(logs[i].String(), "relay-pw") {
			t.Errorf("portal %d logged the relay's password", i)
		}
	}
}
