package store

import (
	"testing"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
)

// TestPagesReuseTheirPlans: the statements a signed-in page view runs are
// planned once per connection, not at every view. PostgreSQL plans each of
// a prepared statement's first five executions for their arguments, then
// reuses one generic plan unless the custom plans look cheaper; for a join
// of five tables planning costs more than running (1 ms against 0.5 ms for
// a page of requests on the load test's database), so a statement that
// keeps its custom plans doubles its cost. On tables the size the load test
// seeds (55 people, 30 clusters, 10,000 requests and credentials),
// analyzed, each statement runs for twelve people on one connection, and
// pg_prepared_statements must show no custom plan after the first five.
func TestPagesReuseTheirPlans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := poolConfig(t, pgtest.URL(t))
	cfg.MaxConns = 1 // one connection: its prepared statements are the ones read below
	s := New(openPool(t, cfg))
	for _, sql := range []string{
		`INSERT INTO users (issuer, subject, email, role)
		 SELECT 'https://idp.example.org', 'u' || n, 'u' || n || '@example.org', CASE WHEN n <= 5 THEN 'staff' ELSE 'customer' END
		 FROM generate_series(1, 55) n`,
		`INSERT INTO clusters (name, display_name, prometheus_url, credential_ttl_days)
		 SELECT 'c' || n, 'Cluster ' || n, 'https://prometheus.c' || n || '.2i2c.cloud', 90 FROM generate_series(1, 30) n`,
		`WITH r AS (
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
			                      status, decided_by, decided_at, created_at)
			SELECT (SELECT id FROM users WHERE subject = 'u' || (6 + n % 50)), (SELECT id FROM clusters WHERE name = 'c' || (1 + n % 30)),
			       'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p', 'age-x25519',
			       'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p',
			       'Dashboards of the hub''s usage for the research team.',
			       'approved', (SELECT id FROM users WHERE subject = 'u' || (1 + n % 5)),
			       now() - n * interval '1 hour', now() - n * interval '1 hour' - interval '5 minutes'
			FROM generate_series(1, 10000) n
			RETURNING id, user_id, cluster_id, decided_by, decided_at, key_fingerprint, created_at
		), a AS (
			INSERT INTO request_approvals (request_id, approver_id, approved_at) SELECT id, decided_by, decided_at FROM r
		)
		INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext, key_fingerprint,
		                         issued_at, expires_at)
		SELECT id, user_id, cluster_id, 'c-' || id, '$2a$05$x', '\x01', key_fingerprint, created_at, created_at + interval '90 days'
		FROM r`,
		`ANALYZE`,
	} {
		if _, err := s.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	type view struct{ person, request, credential int64 }
	var views []view
	rows, err := s.pool.Query(ctx, `SELECT user_id, id, (SELECT id FROM credentials WHERE request_id = requests.id)
		FROM requests WHERE id IN (SELECT max(id) FROM requests GROUP BY user_id) ORDER BY user_id LIMIT 12`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v view
		if err := rows.Scan(&v.person, &v.request, &v.credential); err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	if rows.Err() != nil || len(views) != 12 {
		t.Fatalf("%d people to view as: %v", len(views), rows.Err())
	}

	// What the customer pages and the API's list read, as they read it.
	for _, v := range views {
		calls := []func() error{
			func() error { _, err := s.UserRequestsPage(ctx, v.person, "", nil, 51); return err },
			func() error { _, err := s.UserRequestSummariesPage(ctx, v.person, nil, 11); return err },
			func() error { _, err := s.UserCredentialsPage(ctx, v.person, nil, 51); return err },
			func() error { _, err := s.RequestByID(ctx, v.request); return err },
			func() error { _, err := s.CredentialByID(ctx, v.credential); return err },
		}
		for _, call := range calls {
			if err := call(); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows, err = s.pool.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE generic_plans + custom_plans >= 12`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for rows.Next() {
		var sql string
		var generic, custom int64
		if err := rows.Scan(&sql, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		seen++
		if custom > 5 {
			t.Errorf("planned for its arguments %d times of %d, not reusing its plan after the first 5:\n%s", custom, generic+custom, sql)
		}
	}
	if rows.Err() != nil || seen != 5 {
		t.Fatalf("%d statements run 12 times, want 5: %v", seen, rows.Err())
	}
}
