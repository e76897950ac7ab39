package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3/lock"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
)

func TestSchemaProblemNewerThanBinary(t *testing.T) {
	t.Parallel()
	st := SchemaStatus{Current: 9, Latest: 3}
	if st.Problem() == "" {
		t.Errorf("a newer schema must be reported: %q", st.Problem())
	}
}

func TestMigrateFromEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, poolConfig(t, pgtest.Empty(t)))

	before, err := Schema(ctx, pool)
	if err != nil {
		t.Fatalf("Schema on an empty database: %v", err)
	}
	if before.Current != 0 || before.Problem() == "" || len(before.Pending) == 0 {
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
	if after.Current != after.Latest || after.Problem() != "" || len(after.Pending) != 0 {
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

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := poolConfig(t, pgtest.Empty(t))
	pools := make([]*pgxpool.Pool, 3)
	for i := range pools {
		pools[i] = openPool(t, cfg.Copy())
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
	if err != nil || st.Current != st.Latest {
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
	if err != nil || st.Current != st.Latest {
		t.Errorf("Schema while a migration holds the lock: %+v, %v", st, err)
	}
}
