package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3/lock"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	return New(pgtest.New(t))
}

func demoCluster(name string) *portal.Cluster {
	return &portal.Cluster{Name: name, DisplayName: "Demo " + name, PrometheusURL: "https://prometheus." + name + ".2i2c.cloud",
		CredentialTTLDays: 90, Enabled: true}
}

func TestMigrateFromEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.Empty(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	before, err := Schema(ctx, pool)
	if err != nil {
		t.Fatalf("Schema on an empty database: %v", err)
	}
	if before.Current != 0 || before.UpToDate() || before.Problem() == "" || len(before.Pending) == 0 {
		t.Fatalf("empty database: %+v, problem %q; want version 0, pending migrations and a problem", before, before.Problem())
	}
	applied, err := Migrate(ctx, pool, nil)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if len(applied) != len(before.Pending) {
		t.Errorf("applied %v, want the %d pending", applied, len(before.Pending))
	}
	after, err := Schema(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !after.UpToDate() || after.Problem() != "" || len(after.Pending) != 0 {
		t.Errorf("after Migrate: %+v, problem %q", after, after.Problem())
	}
	again, err := Migrate(ctx, pool, nil)
	if err != nil || len(again) != 0 {
		t.Errorf("second Migrate applied %v, err %v; want nothing", again, err)
	}
	// The schema works: a cluster can be stored.
	if err := New(pool).CreateCluster(ctx, demoCluster("fresh")); err != nil {
		t.Errorf("CreateCluster on the migrated schema: %v", err)
	}
}

func TestSchemaProblemNewerThanBinary(t *testing.T) {
	t.Parallel()
	st := SchemaStatus{Current: 9, Latest: 3}
	if st.UpToDate() || st.Problem() == "" {
		t.Errorf("a newer schema must be reported: %q", st.Problem())
	}
}

func TestClusters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)

	c := demoCluster("awi-ciroh")
	if err := s.CreateCluster(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || c.CreatedAt.IsZero() {
		t.Errorf("CreateCluster did not fill ID and times: %+v", c)
	}
	err := s.CreateCluster(ctx, demoCluster("awi-ciroh"))
	if !errors.Is(err, portal.ErrConflict) {
		t.Errorf("duplicate name: %v, want ErrConflict", err)
	}
	if _, err := s.ClusterByName(ctx, "nope"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("ClusterByName(nope): %v, want ErrNotFound", err)
	}
	if _, err := s.ClusterByID(ctx, 424242); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("ClusterByID(424242): %v, want ErrNotFound", err)
	}
	got, err := s.ClusterByName(ctx, "awi-ciroh")
	if err != nil || got.ID != c.ID || got.PrometheusURL != c.PrometheusURL {
		t.Errorf("ClusterByName: %+v, %v", got, err)
	}

	got.Enabled = false
	got.Note = "paused"
	if err := s.UpdateCluster(ctx, got); err != nil {
		t.Fatal(err)
	}
	if en, _ := s.EnabledClusters(ctx); len(en) != 0 {
		t.Errorf("a disabled cluster is listed as enabled: %v", en)
	}
	if all, _ := s.Clusters(ctx); len(all) != 1 || all[0].Note != "paused" {
		t.Errorf("Clusters after update: %v", all)
	}
	missing := demoCluster("ghost")
	missing.ID = 999999
	if err := s.UpdateCluster(ctx, missing); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("UpdateCluster of a missing cluster: %v, want ErrNotFound", err)
	}
}

func TestCreateClusterRefusesWhatTheSchemaForbids(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	tests := []struct {
		name   string
		mutate func(*portal.Cluster)
	}{
		{"name not a DNS label", func(c *portal.Cluster) { c.Name = "Not_A_Label" }},
		{"name ends with a dash", func(c *portal.Cluster) { c.Name = "bad-" }},
		{"URL without scheme", func(c *portal.Cluster) { c.PrometheusURL = "prometheus.x.2i2c.cloud" }},
		{"zero lifetime", func(c *portal.Cluster) { c.CredentialTTLDays = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := demoCluster("ok")
			tt.mutate(c)
			if err := s.CreateCluster(ctx, c); !errors.Is(err, portal.ErrInvalid) {
				t.Errorf("CreateCluster(%+v) = %v, want ErrInvalid", c, err)
			}
		})
	}
	if all, _ := s.Clusters(ctx); len(all) != 0 {
		t.Errorf("refused clusters were stored: %v", all)
	}
}

func TestUpsertClusterIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	c := demoCluster("2i2c")
	if changed, err := s.UpsertCluster(ctx, c); err != nil || !changed {
		t.Fatalf("first upsert: changed %v, err %v", changed, err)
	}
	id, updated := c.ID, c.UpdatedAt
	same := demoCluster("2i2c")
	if changed, err := s.UpsertCluster(ctx, same); err != nil || changed {
		t.Errorf("same values again: changed %v, err %v; want no change", changed, err)
	}
	if same.ID != id || !same.UpdatedAt.Equal(updated) {
		t.Errorf("unchanged upsert touched the row: %+v", same)
	}
	edited := demoCluster("2i2c")
	edited.CredentialTTLDays = 30
	if changed, err := s.UpsertCluster(ctx, edited); err != nil || !changed || edited.ID != id {
		t.Errorf("edited upsert: changed %v, err %v, id %d (want %d)", changed, err, edited.ID, id)
	}
}

func TestUpsertUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	u := &portal.User{Issuer: "https://idp.example", Subject: "123", Email: "old@example.org", Name: "Old", Role: portal.RoleCustomer}
	if err := s.UpsertUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	again := &portal.User{Issuer: "https://idp.example", Subject: "123", Email: "new@example.org", EmailVerified: true,
		Name: "New", Groups: []string{"2i2c-staff"}, Role: portal.RoleStaff}
	if err := s.UpsertUser(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.ID != u.ID {
		t.Fatalf("same (issuer, subject) got a new user: %d vs %d", again.ID, u.ID)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "new@example.org" || got.Name != "New" || got.Role != portal.RoleStaff || len(got.Groups) != 1 || got.LastLoginAt == nil {
		t.Errorf("user not refreshed: %+v", got)
	}
	other := &portal.User{Issuer: "https://other.example", Subject: "123", Role: portal.RoleCustomer}
	if err := s.UpsertUser(ctx, other); err != nil || other.ID == u.ID {
		t.Errorf("same subject at another issuer must be another user: id %d, err %v", other.ID, err)
	}
	if _, err := s.UserByID(ctx, 987654); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("UserByID(missing) = %v, want ErrNotFound", err)
	}
}

// TestSchemaConstraints checks the rules the database itself enforces, through
// the store's one error mapper.
func TestSchemaConstraints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	c := demoCluster("x")
	if err := s.CreateCluster(ctx, c); err != nil {
		t.Fatal(err)
	}
	alice := &portal.User{Issuer: "i", Subject: "alice", Role: portal.RoleCustomer}
	if err := s.UpsertUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	insertRequest := func(status string, decidedBy any) error {
		_, err := s.db.Exec(ctx, `
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, status, decided_by, decided_at)
			VALUES ($1, $2, 'age1x', 'age-x25519', 'fp', 'a good reason here', $3, $4,
			        CASE WHEN $3 = 'pending' THEN NULL ELSE now() END)`,
			alice.ID, c.ID, status, decidedBy)
		return mapErr("insert request", err)
	}
	if err := insertRequest("pending", nil); err != nil {
		t.Fatal(err)
	}
	if err := insertRequest("pending", nil); !errors.Is(err, portal.ErrConflict) {
		t.Errorf("second pending request for one (user, cluster): %v, want ErrConflict", err)
	}
	if err := insertRequest("approved", alice.ID); !errors.Is(err, portal.ErrInvalid) {
		t.Errorf("self-approved request: %v, want ErrInvalid", err)
	}
	if err := insertRequest("granted", nil); !errors.Is(err, portal.ErrInvalid) {
		t.Errorf("unknown status: %v, want ErrInvalid", err)
	}

	_, err := s.db.Exec(ctx, `INSERT INTO audit_events (at, actor, action, prev_hash, hash) VALUES (now(), 'system', 'test', '\x00', '\x01')`)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`UPDATE audit_events SET action = 'forged'`, `DELETE FROM audit_events`, `TRUNCATE audit_events`} {
		if _, err := s.db.Exec(ctx, stmt); err == nil {
			t.Errorf("%s succeeded on the append-only audit table", stmt)
		}
	}
}

func TestInTxRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.CreateCluster(ctx, demoCluster("rolled-back")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	if _, err := s.ClusterByName(ctx, "rolled-back"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("a rolled-back cluster exists: %v", err)
	}
	if err := s.InTx(ctx, func(tx *Store) error { return tx.CreateCluster(ctx, demoCluster("kept")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClusterByName(ctx, "kept"); err != nil {
		t.Errorf("a committed cluster is missing: %v", err)
	}
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Empty(t)
	pools := make([]*pgxpool.Pool, 3)
	for i := range pools {
		p, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	errs := make(chan error, len(pools))
	for _, p := range pools {
		go func() { _, err := Migrate(ctx, p, nil); errs <- err }()
	}
	for range pools {
		if err := <-errs; err != nil {
			t.Errorf("concurrent migrate up: %v", err)
		}
	}
	st, err := Schema(ctx, pools[0])
	if err != nil || !st.UpToDate() {
		t.Errorf("after concurrent migrations: %+v, %v", st, err)
	}
}

// TestSchemaDoesNotWaitForARunningMigration: /readyz reads the schema's
// version while `portal migrate up` holds goose's lock elsewhere; it must
// not wait for it, or every replica leaves the load balancer during a
// migration.
func TestSchemaDoesNotWaitForARunningMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lock.DefaultLockID)

	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := Schema(ctx, pool)
	if err != nil || !st.UpToDate() {
		t.Errorf("Schema while a migration holds the lock: %+v, %v", st, err)
	}
}
