package store

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// pagingHistory seeds years of use: 200 customers on 5 clusters, each pair with
// one pending request and four decided (three approved, one denied), a
// credential for every approval, two in three of them revoked, ten tokens
// and twenty open sessions per customer; 995 more clusters, closed, stand
// for a long list. Times repeat (a minute of 997), so that the ids must
// break ties.
// Returns the staff member and the customers.
func pagingHistory(t *testing.T, s *Store) (staff *portal.User, customers []int64) {
	t.Helper()
	ctx := t.Context()
	staff = newUser(t, s, "staff", portal.RoleStaff)
	steps := []string{
		`INSERT INTO clusters (name, prometheus_url, enabled)
		 SELECT 'c-' || lpad(n::text, 4, '0'), 'https://prometheus.c-' || n || '.2i2c.cloud', n <= 5
		 FROM generate_series(1, 1000) n`,
		`INSERT INTO users (issuer, subject, email, role)
		 SELECT 'https://idp.example', 'customer-' || n, 'customer-' || n || '@example.org', 'customer'
		 FROM generate_series(1, 200) n`,
		`INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
		                       status, decided_by, decided_at, decision_note, created_at)
		 SELECT u.id, c.id, 'age1x', 'age-x25519', 'fp', 'a good reason here',
		        CASE k WHEN 0 THEN 'pending' WHEN 4 THEN 'denied' ELSE 'approved' END,
		        CASE WHEN k > 0 THEN $1::bigint END, CASE WHEN k > 0 THEN now() END,
		        CASE WHEN k = 4 THEN 'no' ELSE '' END,
		        timestamptz '2020-01-01' + ((u.id * 5 + c.id * 7 + k * 11) % 997) * interval '1 minute'
		 FROM users u, clusters c, generate_series(0, 4) k
		 WHERE u.role = 'customer' AND c.enabled`,
		`INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext,
		                          key_fingerprint, issued_at, expires_at, revoked_at, revoked_by, revoke_reason)
		 SELECT id, user_id, cluster_id, 'user-' || id, '$2a$10$x', '\x01', 'fp', created_at, created_at + interval '90 days',
		        CASE WHEN id % 3 > 0 THEN created_at + interval '1 day' + (id % 5) * interval '1 minute' END,
		        CASE WHEN id % 3 > 0 THEN $1::bigint END, CASE WHEN id % 3 > 0 THEN 'done' ELSE '' END
		 FROM requests WHERE status = 'approved'`,
		`INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at, expires_at)
		 SELECT u.id, 'token ' || n, sha256((u.id || ':' || n)::bytea), '{read}',
		        timestamptz '2020-01-01' + (n % 4) * interval '1 day', timestamptz '2030-01-01'
		 FROM users u, generate_series(1, 10) n WHERE u.role = 'customer'`,
		`INSERT INTO sessions (token, data, expiry)
		 SELECT 'token-' || u.id || '-' || n, '\x00', now() + interval '1 hour'
		 FROM users u, generate_series(1, 20) n WHERE u.role = 'customer'`,
		`INSERT INTO user_sessions (token_hash, user_id, created_at, last_seen_at)
		 SELECT token, split_part(token, '-', 2)::bigint, timestamptz '2026-01-01' + (id_n % 3) * interval '1 minute', now()
		 FROM (SELECT token, row_number() OVER () AS id_n FROM sessions) s`,
		`ANALYZE`,
	}
	for _, sql := range steps {
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{staff.ID}
		}
		if _, err := s.db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("seeding: %v\n%s", err, sql)
		}
	}
	rows, err := s.db.Query(ctx, `SELECT id FROM users WHERE role = 'customer' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		customers = append(customers, id)
	}
	return staff, customers
}

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	NodeType         string     `json:"Node Type"`
	Relation         string     `json:"Relation Name"`
	Index            string     `json:"Index Name"`
	ActualRows       float64    `json:"Actual Rows"`
	ActualLoops      float64    `json:"Actual Loops"`
	RemovedByFilter  float64    `json:"Rows Removed by Filter"`
	RemovedByRecheck float64    `json:"Rows Removed by Index Recheck"`
	Plans            []planNode `json:"Plans"`
}

func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// explainPlan runs sql under EXPLAIN (ANALYZE, FORMAT JSON) and returns its plan.
func explainPlan(t *testing.T, s *Store, sql string, args []any) planNode {
	t.Helper()
	var raw []byte
	if err := s.db.QueryRow(t.Context(), `EXPLAIN (ANALYZE, FORMAT JSON) `+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("explain: %v\n%s", err, sql)
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("reading the plan: %v\n%s", err, raw)
	}
	return plans[0].Plan
}

// TestPageQueriesReadOnlyThePage: on a long history, each page's statement
// reads its big table through the list's index, no more rows than the page
// (one more, to learn whether another follows), first page or later; and a
// capped count reads no more than its cap.
func TestPageQueriesReadOnlyThePage(t *testing.T) {
	ctx, s := start(t)
	_, customers := pagingHistory(t, s)
	alice := customers[17]
	const limit = portal.DefaultPageSize + 1

	// A cursor halfway through each list, as page 2 or 20 would have.
	mid := func(sql string, args ...any) *portal.PageCursor {
		t.Helper()
		var c portal.PageCursor
		if err := s.db.QueryRow(ctx, sql, args...).Scan(&c.At, &c.ID); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	revoked := mid(`SELECT revoked_at, id FROM credentials WHERE revoked_at IS NOT NULL ORDER BY revoked_at DESC, id DESC OFFSET 1000 LIMIT 1`)
	pending := mid(`SELECT created_at, id FROM requests WHERE status = 'pending' ORDER BY created_at, id OFFSET 500 LIMIT 1`)
	approved := mid(`SELECT created_at, id FROM requests WHERE status = 'approved' ORDER BY created_at DESC, id DESC OFFSET 1500 LIMIT 1`)
	mine := mid(`SELECT created_at, id FROM requests WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET 10 LIMIT 1`, alice)
	myCreds := mid(`SELECT issued_at, id FROM credentials WHERE user_id = $1 ORDER BY issued_at DESC, id DESC OFFSET 5 LIMIT 1`, alice)
	myTokens := mid(`SELECT created_at, id FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET 4 LIMIT 1`, alice)
	clusterAfter := &portal.PageCursor{Name: "c-0500", ID: 1}
	mySessions := mid(`SELECT created_at, id FROM user_sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET 10 LIMIT 1`, alice)
	person := mid(`SELECT created_at, id FROM users ORDER BY created_at DESC, id DESC OFFSET 100 LIMIT 1`)

	type query struct {
		sql  string
		args []any
	}
	q := func(sql string, args []any) query { return query{sql, args} }
	tests := []struct {
		name  string
		pages []query // the first page and one further on
		table string  // the table that grows with history
		index string  // the index it is read by
		max   float64 // rows read from it, at most
	}{
		{"revocations", []query{q(revocationsQuery(nil, limit)), q(revocationsQuery(revoked, limit))},
			"credentials", "credentials_revoked_idx", limit},
		{"the queue", []query{q(statusRequestsQuery(portal.StatusPending, nil, limit)), q(statusRequestsQuery(portal.StatusPending, pending, limit))},
			"requests", "requests_queue_idx", limit},
		{"approved requests", []query{q(statusRequestsQuery(portal.StatusApproved, nil, limit)), q(statusRequestsQuery(portal.StatusApproved, approved, limit))},
			"requests", "requests_status_idx", limit},
		{"a customer's requests", []query{q(userRequestsQuery(alice, "", nil, limit)), q(userRequestsQuery(alice, "", mine, limit))},
			"requests", "requests_user_idx", limit},
		{"a customer's overview of requests", []query{q(userRequestSummariesQuery(alice, nil, limit)), q(userRequestSummariesQuery(alice, mine, limit))},
			"requests", "requests_user_idx", limit},
		{"a customer's credentials", []query{q(userCredentialsQuery(alice, nil, limit)), q(userCredentialsQuery(alice, myCreds, limit))},
			"credentials", "credentials_user_idx", limit},
		{"a person's tokens", []query{q(tokensQuery(alice, nil, limit)), q(tokensQuery(alice, myTokens, limit))},
			"api_tokens", "api_tokens_user_idx", limit},
		{"clusters", []query{q(clustersQuery(false, nil, limit)), q(clustersQuery(false, clusterAfter, limit))},
			"clusters", "clusters_name_key", limit},
		{"a person's sessions", []query{q(userSessionsQuery(alice, "", nil, limit)), q(userSessionsQuery(alice, "", mySessions, limit))},
			"user_sessions", "user_sessions_signed_in_idx", limit},
		{"people", []query{q(peopleQuery("", nil, limit)), q(peopleQuery("", person, limit))},
			"users", "users_created_idx", limit},
		{"the revocation count", []query{q(revocationCountQuery, nil)},
			"credentials", "credentials_revoked_idx", portal.CountCap + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, page := range tt.pages {
				plan := explainPlan(t, s, page.sql, page.args)
				var read float64
				var indexed bool
				plan.walk(func(n planNode) {
					// A Bitmap Index Scan names the index; the Bitmap Heap
					// Scan above it, the table.
					indexed = indexed || n.Index == tt.index
					if n.Relation != tt.table {
						return
					}
					if n.NodeType == "Seq Scan" {
						t.Errorf("page %d reads all of %s (Seq Scan)", i+1, tt.table)
					}
					read += (n.ActualRows + n.RemovedByFilter + n.RemovedByRecheck) * n.ActualLoops
				})
				if !indexed {
					t.Errorf("page %d does not read %s by %s", i+1, tt.table, tt.index)
				}
				if read > tt.max {
					t.Errorf("page %d reads %.0f rows of %s, want at most %.0f", i+1, read, tt.table, tt.max)
				}
				if t.Failed() {
					out, _ := json.MarshalIndent(plan, "", "  ")
					t.Logf("plan of page %d:\n%s", i+1, out)
				}
			}
		})
	}
}

// TestPagesWalkEveryRowOnce: following each list's cursors from the first
// page visits every row once, in the list's order, though rows arrive
// between the pages; a customer's list holds only that customer's rows.
func TestPagesWalkEveryRowOnce(t *testing.T) {
	ctx, s := start(t)
	_, customers := pagingHistory(t, s)
	alice := customers[3]

	// walk pages through a list 7 rows at a time, calling between after
	// the first page, and returns the ids in the order the pages gave them.
	walk := func(t *testing.T, page func(after *portal.PageCursor) ([]int64, *portal.PageCursor, error), between func()) []int64 {
		t.Helper()
		var (
			ids   []int64
			after *portal.PageCursor
		)
		for n := 0; ; n++ {
			got, last, err := page(after)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, got...)
			if last == nil {
				return ids
			}
			if n == 0 {
				between()
			}
			after = last
		}
	}
	const size = 7
	ends := func(n int, key func(i int) portal.PageCursor) *portal.PageCursor {
		if n < size {
			return nil
		}
		c := key(n - 1)
		return &c
	}
	ids := func(sql string, args ...any) []int64 {
		t.Helper()
		rows, err := s.db.Query(ctx, sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		return out
	}

	t.Run("a customer's requests", func(t *testing.T) {
		want := ids(`SELECT id FROM requests WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, alice)
		got := walk(t, func(after *portal.PageCursor) ([]int64, *portal.PageCursor, error) {
			rs, err := s.UserRequestsPage(ctx, alice, "", after, size)
			var out []int64
			for _, r := range rs {
				if r.UserID != alice {
					t.Errorf("request %d of user %d on user %d's list", r.ID, r.UserID, alice)
				}
				out = append(out, r.ID)
			}
			return out, ends(len(rs), func(i int) portal.PageCursor { return portal.PageCursor{At: rs[i].CreatedAt, ID: rs[i].ID} }), err
		}, func() {
			// A new request, the newest: before the first page, not on the next.
			if _, err := s.db.Exec(ctx, `INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
				status, decided_by, decided_at, decision_note) SELECT $1, id, 'age1x', 'age-x25519', 'fp', 'a late reason', 'denied', $2, now(), 'no'
				FROM clusters WHERE name = 'c-0001'`, alice, customers[0]); err != nil {
				t.Fatal(err)
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("walked %d requests %v,\nwant %d %v", len(got), got, len(want), want)
		}
	})

	t.Run("revocations", func(t *testing.T) {
		want := ids(`SELECT id FROM credentials WHERE revoked_at IS NOT NULL ORDER BY revoked_at DESC, id DESC`)
		got := walk(t, func(after *portal.PageCursor) ([]int64, *portal.PageCursor, error) {
			cs, err := s.RevocationsPage(ctx, after, 100)
			var out []int64
			for _, c := range cs {
				out = append(out, c.ID)
			}
			if len(cs) < 100 {
				return out, nil, err
			}
			return out, &portal.PageCursor{At: *cs[99].RevokedAt, ID: cs[99].ID}, err
		}, func() {
			// Revoked now, so the latest: on no later page.
			if _, err := s.db.Exec(ctx, `UPDATE credentials SET revoked_at = now(), revoked_by = user_id, revoke_reason = 'late'
				WHERE id = (SELECT min(id) FROM credentials WHERE revoked_at IS NULL)`); err != nil {
				t.Fatal(err)
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("walked %d revocations, want %d, each once in order", len(got), len(want))
		}
	})

	t.Run("the queue", func(t *testing.T) {
		want := ids(`SELECT id FROM requests WHERE status = 'pending' ORDER BY created_at, id`)
		got := walk(t, func(after *portal.PageCursor) ([]int64, *portal.PageCursor, error) {
			rs, err := s.StatusRequestsPage(ctx, portal.StatusPending, after, 100)
			var out []int64
			for _, r := range rs {
				out = append(out, r.ID)
			}
			if len(rs) < 100 {
				return out, nil, err
			}
			return out, &portal.PageCursor{At: rs[99].CreatedAt, ID: rs[99].ID}, err
		}, func() {})
		if !slices.Equal(got, want) {
			t.Errorf("walked %d pending requests, want %d, each once in order", len(got), len(want))
		}
	})

	t.Run("clusters", func(t *testing.T) {
		want := ids(`SELECT id FROM clusters ORDER BY name`)
		got := walk(t, func(after *portal.PageCursor) ([]int64, *portal.PageCursor, error) {
			cs, err := s.ClustersPage(ctx, false, after, 100)
			var out []int64
			for _, c := range cs {
				out = append(out, c.ID)
			}
			if len(cs) < 100 {
				return out, nil, err
			}
			return out, &portal.PageCursor{Name: cs[99].Name, ID: cs[99].ID}, err
		}, func() {
			if _, err := s.db.Exec(ctx, `INSERT INTO clusters (name, prometheus_url) VALUES ('a-new-one', 'https://p.example')`); err != nil {
				t.Fatal(err)
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("walked %d clusters, want %d, each once by name", len(got), len(want))
		}
	})

	t.Run("counts", func(t *testing.T) {
		n, err := s.RevocationCount(ctx)
		if err != nil || !n.Over || n.String() != "more than 1,000" {
			t.Errorf("RevocationCount = %+v (%q), %v; want more than 1,000", n, n, err)
		}
	})
}
