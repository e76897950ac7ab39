package workflow

import (
	"context"
	"testing"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// approvals is what the tests and benchmarks of Approve's own code share: a
// service on a fresh database, one cluster, a member of staff, and an age
// key for the customers' requests.
type approvals struct {
	st      *store.Store
	svc     *Service
	cluster *portal.Cluster
	sam     Actor
	rcpt    *issue.Recipient
}

func newApprovals(tb testing.TB) *approvals {
	tb.Helper()
	return newTracedApprovals(tb, nil)
}

// newTracedApprovals is newApprovals with tracer watching the store's
// statements (see pgtest.NewTraced).
func newTracedApprovals(tb testing.TB, tracer pgx.QueryTracer) *approvals {
	tb.Helper()
	ctx := context.Background()
	st := store.New(pgtest.NewTraced(tb, tracer))
	f := &approvals{st: st, svc: New(st, Options{})}
	f.cluster = &portal.Cluster{Name: "awi-ciroh", DisplayName: "AWI CIROH", PrometheusURL: "https://prometheus.awi-ciroh.2i2c.cloud",
		CredentialTTLDays: 90, Enabled: true}
	if err := st.CreateCluster(ctx, f.cluster); err != nil {
		tb.Fatal(err)
	}
	staff := &portal.User{Issuer: "https://idp.example.org", Subject: "sam", Email: "sam@2i2c.org", Role: portal.RoleStaff}
	if err := st.UpsertUser(ctx, staff); err != nil {
		tb.Fatal(err)
	}
	f.sam = Actor{User: staff, IP: "192.0.2.1", UserAgent: "test"}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		tb.Fatal(err)
	}
	if f.rcpt, err = issue.ParseRecipient(key.Recipient().String()); err != nil {
		tb.Fatal(err)
	}
	return f
}

// request makes a pending request of a new customer called name (their
// email is name@example.org) for the cluster.
func (f *approvals) request(tb testing.TB, name string) int64 {
	tb.Helper()
	ctx := context.Background()
	u := &portal.User{Issuer: "https://idp.example.org", Subject: name, Email: name + "@example.org", Role: portal.RoleCustomer}
	if err := f.st.UpsertUser(ctx, u); err != nil {
		tb.Fatal(err)
	}
	r := &portal.Request{UserID: u.ID, ClusterID: f.cluster.ID, PublicKey: f.rcpt.Key, KeyType: f.rcpt.Type,
		KeyFingerprint: f.rcpt.Fingerprint, Justification: "Dashboards for the research team."}
	if err := f.st.CreateRequest(ctx, r); err != nil {
		tb.Fatal(err)
	}
	return r.ID
}
