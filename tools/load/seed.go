package main

import (
	"context"
	"fmt"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/devidp"
	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/loadseed"
)

// identity is one of the load's people, as the provider signs them in and
// as the seed stores them.
type identity struct {
	devidp.Identity
	staff bool
	ip    string // the X-Forwarded-For address this person's requests carry
}

// identities returns the load's customers and staff. Staff are staff by
// their 2i2c.org address, as in production (PORTAL_STAFF_EMAIL_DOMAINS).
func identities(customers, staff int) (cs, ss []identity) {
	domains := []string{"example.org", "uni.example.edu", "lab.example.net", "hub.example.com"}
	for i := range customers {
		cs = append(cs, identity{
			Identity: devidp.Identity{Email: fmt.Sprintf("customer%03d@%s", i+1, domains[i%len(domains)]), Name: fmt.Sprintf("Customer %d", i+1)},
			ip:       fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250),
		})
	}
	for i := range staff {
		ss = append(ss, identity{
			Identity: devidp.Identity{Email: fmt.Sprintf("staff%02d@2i2c.org", i+1), Name: fmt.Sprintf("Staff %d", i+1)},
			staff:    true,
			ip:       fmt.Sprintf("10.2.%d.%d", i/250, 1+i%250),
		})
	}
	return cs, ss
}

// seedSizes is how much the seed writes.
type seedSizes struct {
	credentials, pending, denied, cancelled, events, clusters int
}

func sizesFor(cfg config) seedSizes {
	s := seedSizes{
		credentials: cfg.Requests,
		pending:     max(cfg.Requests*3/100, 2*cfg.Staff),
		denied:      cfg.Requests * 15 / 1000,
		cancelled:   cfg.Requests / 100,
		events:      cfg.Events,
		clusters:    cfg.Clusters,
	}
	// At most one pending request per customer and cluster.
	s.pending = min(s.pending, cfg.Customers*cfg.Clusters)
	return s
}

// seeded is what the seed wrote that the people start from.
type seeded struct {
	took      time.Duration
	auditTook time.Duration
	requests  int64
	creds     int64
	pending   int64
	// Per customer's email: some of their requests and credentials, for a
	// first visit before they have seen their dashboard.
	requestsOf, credentialsOf map[string][]int64
}

// seed writes the load's people (with the subject and issuer the provider
// gives them, so that signing in finds them), clusters, requests,
// credentials and audit events. One real age recipient, ciphertext and
// bcrypt hash serve every credential: the pages never open them, and an
// approval encrypts to the recipient for real.
func seed(ctx context.Context, pool *pgxpool.Pool, issuer string, customers, staff []identity, sz seedSizes) (*seeded, error) {
	start := time.Now()
	key, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	rcpt, err := issue.ParseRecipient(key.Recipient().String())
	if err != nil {
		return nil, err
	}
	ciphertext, err := issue.Encrypt([]byte("seeded credentials.txt: the load test never opens it\n"), rcpt)
	if err != nil {
		return nil, err
	}
	hash, err := issue.HashPassword(issue.NewPassword(), issue.DefaultBcryptCost)
	if err != nil {
		return nil, err
	}

	var users []loadseed.User
	var custIDs, staffIDs []int64
	for _, id := range append(append([]identity{}, customers...), staff...) {
		role := "customer"
		if id.staff {
			role = "staff"
		}
		var uid int64
		if err := pool.QueryRow(ctx, `
			INSERT INTO users (issuer, subject, email, email_verified, name, role)
			VALUES ($1, $2, $3, true, $4, $5) RETURNING id`,
			issuer, id.Subject(), id.Email, id.Name, role).Scan(&uid); err != nil {
			return nil, fmt.Errorf("seed user %s: %w", id.Email, err)
		}
		users = append(users, loadseed.User{ID: uid, Email: id.Email, Staff: id.staff})
		if id.staff {
			staffIDs = append(staffIDs, uid)
		} else {
			custIDs = append(custIDs, uid)
		}
	}

	var clusters []loadseed.Cluster
	var clusterIDs []int64
	rows, err := pool.Query(ctx, `
		INSERT INTO clusters (name, display_name, prometheus_url)
		SELECT 'hub-' || lpad(g::text, 2, '0'), 'Hub ' || g, format('https://prometheus.hub-%s.2i2c.cloud', lpad(g::text, 2, '0'))
		FROM generate_series(1, $1::int) g
		RETURNING id, name`, sz.clusters)
	if err != nil {
		return nil, fmt.Errorf("seed clusters: %w", err)
	}
	for rows.Next() {
		var c loadseed.Cluster
		if err := rows.Scan(&c.ID, &c.Name); err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
		clusterIDs = append(clusterIDs, c.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seed clusters: %w", err)
	}

	// The requests and credentials, in one transaction. A few customers and
	// clusters are busier than the rest (random()^k); one in ten
	// credentials has expired, one in ten is revoked (two in a hundred
	// reported compromised), the rest are active.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `SELECT setseed(0.2026)`)
	if err != nil {
		return nil, err
	}
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"approved requests", `
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
			                      status, decided_by, decided_at, created_at)
			SELECT ($1::bigint[])[1 + floor(power(random(), 1.3) * cardinality($1::bigint[]))::int],
			       ($2::bigint[])[1 + floor(power(random(), 1.5) * cardinality($2::bigint[]))::int],
			       $4, $5, $6, 'Dashboards in our own Grafana for the community''s hub usage.',
			       'approved', ($3::bigint[])[1 + g % cardinality($3::bigint[])], d.at, d.at - interval '1 hour' - random() * interval '3 days'
			FROM generate_series(1, $7::int) g,
			     LATERAL (SELECT CASE WHEN g % 100 < 10 THEN now() - interval '100 days' - random() * interval '265 days'
			                          ELSE now() - random() * interval '85 days' END AS at) d`,
			[]any{custIDs, clusterIDs, staffIDs, rcpt.Key, string(rcpt.Type), rcpt.Fingerprint, sz.credentials}},
		{"credentials", `
			INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext, key_fingerprint,
			                         issued_at, expires_at, revoked_at, revoked_by, revoke_reason, compromised,
			                         download_count, last_download_at)
			SELECT r.id, r.user_id, r.cluster_id, c.name || '-u' || r.id, $1, $2, r.key_fingerprint,
			       r.decided_at, r.decided_at + interval '90 days',
			       CASE WHEN r.id % 100 BETWEEN 10 AND 19
			            THEN r.decided_at + (least(now(), r.decided_at + interval '90 days') - r.decided_at) * random() END,
			       CASE WHEN r.id % 100 BETWEEN 10 AND 17 THEN r.decided_by WHEN r.id % 100 BETWEEN 18 AND 19 THEN r.user_id END,
			       CASE WHEN r.id % 100 BETWEEN 10 AND 17 THEN 'left the project'
			            WHEN r.id % 100 BETWEEN 18 AND 19 THEN 'pasted in a public notebook' ELSE '' END,
			       r.id % 100 BETWEEN 18 AND 19,
			       r.id % 4, CASE WHEN r.id % 4 > 0 THEN r.decided_at + interval '1 hour' END
			FROM requests r JOIN clusters c ON c.id = r.cluster_id
			WHERE r.status = 'approved'`,
			[]any{hash, ciphertext}},
		// Each staff approval is a row of request_approvals, as the
		// workflow records it: the request lists read their approvers.
		{"approvals", `
			INSERT INTO request_approvals (request_id, approver_id, approved_at)
			SELECT id, decided_by, decided_at FROM requests WHERE status = 'approved'`, nil},
		{"denied requests", `
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
			                      status, decided_by, decided_at, decision_note, created_at)
			SELECT ($1::bigint[])[1 + g % cardinality($1::bigint[])], ($2::bigint[])[1 + g % cardinality($2::bigint[])],
			       $4, $5, $6, 'We would like to look at the hub''s metrics.',
			       'denied', ($3::bigint[])[1 + g % cardinality($3::bigint[])], d.at, 'Use the community''s shared Grafana instead.', d.at - interval '2 days'
			FROM generate_series(1, $7::int) g, LATERAL (SELECT now() - random() * interval '300 days' AS at) d`,
			[]any{custIDs, clusterIDs, staffIDs, rcpt.Key, string(rcpt.Type), rcpt.Fingerprint, sz.denied}},
		{"cancelled requests", `
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
			                      status, decided_by, decided_at, created_at)
			SELECT u, ($2::bigint[])[1 + g % cardinality($2::bigint[])], $3, $4, $5, 'Opened by mistake, on the wrong cluster.',
			       'cancelled', u, d.at, d.at - interval '1 day'
			FROM generate_series(1, $6::int) g,
			     LATERAL (SELECT ($1::bigint[])[1 + g % cardinality($1::bigint[])] AS u, now() - random() * interval '300 days' AS at) d`,
			[]any{custIDs, clusterIDs, rcpt.Key, string(rcpt.Type), rcpt.Fingerprint, sz.cancelled}},
		// Pending ones are recent (the portal expires a request after 14
		// days unanswered), at most one per customer and cluster.
		{"pending requests", `
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, created_at)
			SELECT ($1::bigint[])[1 + g % cardinality($1::bigint[])],
			       ($2::bigint[])[1 + (g / cardinality($1::bigint[])) % cardinality($2::bigint[])],
			       $3, $4, $5, 'A new research group on the hub wants its own dashboards.', now() - random() * interval '10 days'
			FROM generate_series(0, $6::int - 1) g`,
			[]any{custIDs, clusterIDs, rcpt.Key, string(rcpt.Type), rcpt.Fingerprint, sz.pending}},
	}
	for _, st := range steps {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return nil, fmt.Errorf("seed %s: %w", st.what, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}

	auditStart := time.Now()
	if err := loadseed.CopyAuditEvents(ctx, pool, loadseed.NewEventSource(sz.events, users, clusters)); err != nil {
		return nil, err
	}
	auditTook := time.Since(auditStart)
	// Vacuumed and analysed, as a database in service is: otherwise
	// autovacuum would work through the fresh rows while people browse.
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
		return nil, fmt.Errorf("seed: vacuum: %w", err)
	}

	sd := &seeded{requestsOf: map[string][]int64{}, credentialsOf: map[string][]int64{}}
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM credentials),
		(SELECT count(*) FROM requests WHERE status = 'pending')`).Scan(&sd.requests, &sd.creds, &sd.pending); err != nil {
		return nil, err
	}
	rows, err = pool.Query(ctx, `
		SELECT u.email, array(SELECT id FROM requests r WHERE r.user_id = u.id ORDER BY id LIMIT 5),
		       array(SELECT id FROM credentials c WHERE c.user_id = u.id ORDER BY id LIMIT 5)
		FROM users u WHERE u.role = 'customer'`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var email string
		var reqs, creds []int64
		if err := rows.Scan(&email, &reqs, &creds); err != nil {
			return nil, err
		}
		sd.requestsOf[email], sd.credentialsOf[email] = reqs, creds
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sd.took, sd.auditTook = time.Since(start), auditTook
	return sd, nil
}
