package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/smtptest"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// BenchmarkDeliverToSMTP times DeliverDue sending b.N queued emails to an
// SMTP server on the loopback, with AUTH: the database round trips and the
// SMTP conversations, which is what bounds a burst of messages (a cluster's
// credentials expiring together).
func BenchmarkDeliverToSMTP(b *testing.B) {
	st := store.New(pgtest.New(b))
	srv := smtptest.Start(b, smtptest.Options{User: "portal", Password: "pw"})
	queue(b, st, emails(b.N)...)
	w := NewWorker(st, map[portal.Channel]Sender{portal.ChannelEmail: newMailer(b, srv.URL("portal:pw"))},
		Options{Log: quiet()})

	b.ResetTimer()
	began := time.Now()
	sent, err := w.DeliverDue(context.Background())
	took := time.Since(began)
	b.StopTimer()
	if err != nil || sent != b.N {
		b.Fatalf("DeliverDue = %d, %v; want %d sent", sent, err, b.N)
	}
	if n := len(srv.Received()); n != b.N {
		b.Fatalf("the server got %d messages; want %d", n, b.N)
	}
	b.ReportMetric(float64(sent)/took.Seconds(), "msgs/s")
}
