package workflow

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/message"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// errRollback ends a benchmark's transaction without keeping what it wrote.
var errRollback = errors.New("rolled back")

// BenchmarkApprove times an approval from the decision to the stored
// credential, and the parts it is made of: bcrypt, rendering credentials.txt,
// age, one database round trip, and the database part (the same transaction
// with the credential made beforehand). The approve sub-benchmark runs last
// and reports, from the parts measured before it, total/(bcrypt+age) — the
// target is at most 1.5 — and the database time estimated as total − bcrypt −
// render − age, to set beside the database sub-benchmark's own figure. The
// throwaway PostgreSQL of `make bench` runs with fsync off, so a production
// commit costs more. Approve hashes the password in the background while it
// locks the request, reads the cluster and writes the decision, and renders
// and encrypts while the hash finishes, so its total is less than the sum of
// its parts.
func BenchmarkApprove(b *testing.B) {
	ctx := context.Background()
	f := newApprovals(b)
	st, svc, cluster, sam, rcpt := f.st, f.svc, f.cluster, f.sam, f.rcpt
	staff := sam.User

	// pending makes n pending requests, each by a new customer, so that the
	// one-pending-request-per-customer-and-cluster rule holds.
	pending := func(b *testing.B, n int) []int64 {
		b.Helper()
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = f.request(b, "customer-"+strings.ToLower(rand.Text()))
		}
		return ids
	}

	// After b.Loop, or a loop of b.N, b.N is the number of iterations timed.
	perOp := func(b *testing.B) time.Duration { return b.Elapsed() / time.Duration(b.N) }
	var bcryptOp, renderOp, ageOp time.Duration

	b.Run("bcrypt", func(b *testing.B) {
		password := issue.NewPassword()
		for b.Loop() {
			if _, err := issue.HashPassword(password, issue.DefaultBcryptCost); err != nil {
				b.Fatal(err)
			}
		}
		bcryptOp = perOp(b)
	})
	now := time.Now()
	file := &issue.CredentialsFile{Cluster: cluster, Username: issue.NewUsername(), Password: issue.NewPassword(),
		IssuedAt: now, ExpiresAt: now.Add(cluster.CredentialTTL())}
	b.Run("render", func(b *testing.B) {
		for b.Loop() {
			if _, err := issue.RenderCredentialsFile(file); err != nil {
				b.Fatal(err)
			}
		}
		renderOp = perOp(b)
	})
	plaintext, err := issue.RenderCredentialsFile(file)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("age", func(b *testing.B) {
		for b.Loop() {
			if _, err := issue.Encrypt(plaintext, rcpt); err != nil {
				b.Fatal(err)
			}
		}
		ageOp = perOp(b)
	})

	// The database part is mostly waiting: Approve makes 3 round trips (the
	// BEGIN, the request's lock, its cluster, the approval, the decision, the
	// credential's ID and the audit chain's lock; then the audit rows and the
	// message, both while the password is hashed; then the credential, the
	// COMMIT and the request read back).
	b.Run("roundtrip", func(b *testing.B) {
		var one int
		for b.Loop() {
			if err := st.Pool().QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
				b.Fatal(err)
			}
		}
	})

	issued, err := issue.NewSecrets(issue.DefaultBcryptCost).Issue(cluster, rcpt, now, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("database", func(b *testing.B) {
		ids := pending(b, b.N)
		b.ResetTimer()
		for _, id := range ids {
			// Approve's own code, with the secrets made beforehand: only
			// the username is new each time, as usernames are unique.
			premade := premadeSecrets{issued: issued, username: issue.NewUsername()}
			if _, err := svc.approve(ctx, sam, id, ApproveInput{}, premade); err != nil {
				b.Fatal(err)
			}
		}
	})

	// What the outbox adds to an approval: composing the customer's message;
	// its insert goes with the audit rows, while the password is hashed.
	b.Run("outbox", func(b *testing.B) {
		err := st.InTx(ctx, func(tx *store.Store) error {
			for b.Loop() {
				err := tell(ctx, tx)(svc.notify.toCustomer(message.Facts{
					Event: portal.ActionRequestApproved, Link: svc.notify.requestLink(1, false), Cluster: cluster.Name,
					RequestID: 1, CredentialID: 1, Actor: staff.Email, Note: "Welcome.", ExpiresAt: now,
				}, staff.ID, staff.Email, true))
				if err != nil {
					return err
				}
			}
			return errRollback
		})
		if err != errRollback {
			b.Fatal(err)
		}
	})

	b.Run("approve", func(b *testing.B) {
		ids := pending(b, b.N)
		b.ResetTimer()
		for _, id := range ids {
			if _, err := svc.Approve(ctx, sam, id, ApproveInput{}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		total := perOp(b)
		if bcryptOp > 0 && ageOp > 0 { // not when -bench picks approve alone
			b.ReportMetric(float64(total)/float64(bcryptOp+ageOp), "total/(bcrypt+age)")
			b.ReportMetric(float64(total-bcryptOp-renderOp-ageOp), "est-db-ns/op")
		}
	})
}

// premadeSecrets are secrets made beforehand, issued under a username of
// their own.
type premadeSecrets struct {
	issued   *issue.Issued
	username string
}

func (p premadeSecrets) Username() string { return p.username }

func (p premadeSecrets) Issue(c *portal.Cluster, _ *issue.Recipient, now, expiresAt time.Time) (*issue.Issued, error) {
	i := *p.issued
	i.Username = p.username
	i.IssuedAt, i.ExpiresAt = issue.Lifetime(c, now, expiresAt)
	return &i, nil
}
