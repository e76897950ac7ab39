package workflow

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// BenchmarkApprove times an approval from the decision to the stored
// credential, and the parts it is made of: bcrypt, rendering credentials.txt,
// age, one database round trip, and the database part (the same transaction
// with the credential made beforehand). The approve sub-benchmark runs last
// and reports, from the parts measured before it, total/(bcrypt+age) — the
// target is at most 1.5 — and the database time estimated as total − bcrypt −
// render − age, to set beside the database sub-benchmark's own figure. The
// throwaway PostgreSQL of `make bench` runs with fsync off, so a production
// commit costs more.
func BenchmarkApprove(b *testing.B) {
	ctx := context.Background()
	st := store.New(pgtest.New(b))
	svc := New(st, Options{})
	cluster := &issue.Cluster{Name: "awi-ciroh", DisplayName: "AWI CIROH", PrometheusURL: "https://prometheus.awi-ciroh.2i2c.cloud",
		CredentialTTLDays: 90, Enabled: true}
	if err := st.CreateCluster(ctx, cluster); err != nil {
		b.Fatal(err)
	}
	staff := &issue.User{Issuer: "https://idp.example.org", Subject: "sam", Email: "sam@2i2c.org", Role: issue.RoleStaff}
	if err := st.UpsertUser(ctx, staff); err != nil {
		b.Fatal(err)
	}
	sam := Actor{User: staff, IP: "192.0.2.1", UserAgent: "benchmark"}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	rcpt, err := issue.ParseRecipient(key.Recipient().String())
	if err != nil {
		b.Fatal(err)
	}

	// pending makes n pending requests, each by a new customer, so that the
	// one-pending-request-per-customer-and-cluster rule holds.
	pending := func(b *testing.B, n int) []int64 {
		b.Helper()
		ids := make([]int64, n)
		for i := range ids {
			u := &issue.User{Issuer: "https://idp.example.org", Subject: "customer-" + rand.Text(), Email: "customer@example.org",
				Role: issue.RoleCustomer}
			if err := st.UpsertUser(ctx, u); err != nil {
				b.Fatal(err)
			}
			r := &issue.Request{UserID: u.ID, ClusterID: cluster.ID, PublicKey: rcpt.Key, KeyType: rcpt.Type,
				KeyFingerprint: rcpt.Fingerprint, Justification: "Dashboards for the research team."}
			if err := st.CreateRequest(ctx, r); err != nil {
				b.Fatal(err)
			}
			ids[i] = r.ID
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

	// The database part is mostly waiting: Approve makes 19 round trips
	// (begin, lock, cluster, savepoint, insert, release, decide, five for
	// each audit event, commit, and the credential read back).
	b.Run("roundtrip", func(b *testing.B) {
		var one int
		for b.Loop() {
			if err := st.Pool().QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
				b.Fatal(err)
			}
		}
	})

	issued, err := issue.Issue(cluster, rcpt, now, issue.DefaultBcryptCost)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("database", func(b *testing.B) {
		ids := pending(b, b.N)
		b.ResetTimer()
		for _, id := range ids {
			if _, err := approveIssued(ctx, svc, sam, id, issued); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("approve", func(b *testing.B) {
		ids := pending(b, b.N)
		b.ResetTimer()
		for _, id := range ids {
			if _, err := svc.Approve(ctx, sam, id, ""); err != nil {
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

// approveIssued is Approve with a credential made beforehand: the same
// statements in one transaction, the same audit events, but no bcrypt,
// rendering or age, so that it times the database part alone. It copies
// Approve's steps, and must follow them when they change. Only the username
// is new each time, as the cluster's usernames are unique.
func approveIssued(ctx context.Context, s *Service, a Actor, id int64, issued *issue.Issued) (*issue.Credential, error) {
	var cred *issue.Credential
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		r, err := s.lockForDecision(ctx, tx, a, id, "approve")
		if err != nil {
			return err
		}
		cluster, err := tx.ClusterByID(ctx, r.ClusterID)
		if err != nil {
			return err
		}
		rcpt, err := issue.ParseRecipient(r.PublicKey)
		if err != nil {
			return err
		}
		cred = &issue.Credential{
			RequestID: r.ID, UserID: r.UserID, ClusterID: cluster.ID, Username: issue.NewUsername(),
			PasswordHash: issued.PasswordHash, Ciphertext: issued.Ciphertext, KeyFingerprint: rcpt.Fingerprint,
			IssuedAt: issued.IssuedAt, ExpiresAt: issued.ExpiresAt,
		}
		if err := tx.InTx(ctx, func(sp *store.Store) error { return sp.CreateCredential(ctx, cred) }); err != nil {
			return err
		}
		if err := tx.DecideRequest(ctx, id, issue.StatusApproved, a.User.ID, ""); err != nil {
			return err
		}
		return audit(
			a.event(issue.ActionRequestApproved, issue.SubjectRequest, id, &r.ClusterID, nil),
			a.event(issue.ActionCredentialIssued, issue.SubjectCredential, cred.ID, &r.ClusterID, map[string]any{
				"request_id": id, "username": cred.Username, "expires_at": cred.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"),
				"key_fingerprint": cred.KeyFingerprint,
			}),
		)
	})
	if err != nil {
		return nil, err
	}
	return s.store.CredentialByID(ctx, cred.ID)
}
