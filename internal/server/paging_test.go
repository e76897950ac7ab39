package server

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// pagingScene is a portal with more of everything than a page holds:
// 120 clusters more (one closed), alice with a pending request on each of
// them and 150 credentials of her own (most revoked) and 150 tokens, bob with
// a few of each that alice must never see. Times repeat, so that the ids
// break ties.
type pagingScene struct {
	p               *testPortal
	alice, bob, sam *browser
	aliceID, samID  int64
}

func newPagingScene(t *testing.T) *pagingScene {
	t.Helper()
	p, alice, bob, sam := newScene(t)
	sc := &pagingScene{p: p, alice: alice, bob: bob, sam: sam}
	sc.aliceID = int64(p.count(`SELECT id FROM users WHERE email = 'alice@example.org'`))
	sc.samID = int64(p.count(`SELECT id FROM users WHERE email = 'sam@2i2c.org'`))
	bobID := int64(p.count(`SELECT id FROM users WHERE email = 'bob@example.org'`))
	p.exec(`INSERT INTO clusters (name, prometheus_url, enabled)
		SELECT 'c-' || lpad(n::text, 3, '0'), 'https://prometheus.c-' || n || '.2i2c.cloud', n <> 60 FROM generate_series(1, 120) n`)
	p.exec(`INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, created_at)
		SELECT $1, id, 'age1x', 'age-x25519', 'fp', 'a good reason here', timestamptz '2026-01-01' + (id % 7) * interval '1 minute'
		FROM clusters WHERE name LIKE 'c-%'`, sc.aliceID)
	for _, who := range []struct {
		id int64
		n  int
	}{{sc.aliceID, 150}, {bobID, 5}} {
		p.exec(`WITH r AS (
				INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
				                      status, decided_by, decided_at, created_at)
				SELECT $1, (SELECT id FROM clusters WHERE name = 'awi-ciroh'), 'age1x', 'age-x25519', 'fp', 'a good reason here',
				       'approved', $2, now(), timestamptz '2025-06-01' + (n % 7) * interval '1 hour'
				FROM generate_series(1, $3::int) n
				RETURNING id, user_id, cluster_id, created_at
			)
			INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext, key_fingerprint,
			                         issued_at, expires_at, revoked_at, revoked_by, revoke_reason)
			SELECT id, user_id, cluster_id, 'user-' || id, '$2a$10$x', '\x01', 'fp', created_at, created_at + interval '900 days',
			       CASE WHEN id % 13 < 11 THEN created_at + interval '1 day' END, CASE WHEN id % 13 < 11 THEN $2::bigint END,
			       CASE WHEN id % 13 < 11 THEN 'rotated' ELSE '' END
			FROM r`, who.id, sc.samID, who.n)
		p.exec(`INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at, expires_at)
			SELECT $1::bigint, 'token ' || n, sha256(($1::bigint || ':' || n)::bytea), '{read}',
			       timestamptz '2026-01-01' + (n % 5) * interval '1 hour', now() + interval '30 days'
			FROM generate_series(1, $2::int) n`, who.id, who.n)
	}
	// 150 more people, 150 more sessions of alice's, 150 messages.
	p.exec(`INSERT INTO users (issuer, subject, email, created_at)
		SELECT 'https://idp.example', 'person-' || n, 'person-' || n || '@example.org', timestamptz '2026-01-01' + (n % 4) * interval '1 hour'
		FROM generate_series(1, 150) n`)
	p.exec(`WITH s AS (
			INSERT INTO sessions (token, data, expiry)
			SELECT 'seeded-' || n, '\x00', now() + interval '1 hour' FROM generate_series(1, 150) n
			RETURNING token
		)
		INSERT INTO user_sessions (token_hash, user_id, created_at, ip, user_agent)
		SELECT token, $1, timestamptz '2026-01-01' + (length(token) % 3) * interval '1 minute', '192.0.2.9', 'seeded'
		FROM s`, sc.aliceID)
	p.exec(`INSERT INTO messages (event, audience, channel, recipient, subject, body_text, status)
		SELECT 'request.created', 'staff', 'none', '', 'Message ' || n, 'text', 'unsent' FROM generate_series(1, 150) n`)
	return sc
}

// idsInOrder runs a query of ids on the portal's database.
func (p *testPortal) idsInOrder(query string, args ...any) []string {
	p.t.Helper()
	rows, err := p.Store.Pool().Query(context.Background(), query, args...)
	if err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			p.t.Fatal(err)
		}
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// pagedList is one paged list, as a page or as the API gives it.
type pagedList struct {
	name string
	who  func(*pagingScene) *browser
	path string // the first page
	// rows reads the rows of one answer, and the address of the next page
	// ("" on the last).
	rows func(t *testing.T, r response) (rows []string, next string)
	// want is the rows the whole list holds, in its order, read from the
	// database.
	want func(*pagingScene) []string
	// arrive adds a row while someone pages; arrivesLast when it belongs at
	// the end of the list (the queue, oldest first), where the walk reaches
	// it; otherwise it is before the first page's end and on no later page.
	arrive      func(*pagingScene)
	arrivesLast bool
	// byState: the page shows its rows split by state (the dashboard's
	// current and past credentials), so a page holds the next rows of the
	// list in another order.
	byState bool
	// first is how many rows the first page shows without a limit, when
	// not portal.DefaultPageSize: the dashboard, an overview, shows its
	// newest requests only; the pages after it hold the usual number.
	first int
}

// apiRows reads a list of the API: the field of each object under key, and
// next_cursor as the next page's address.
func apiRows(key, field string) func(t *testing.T, r response) ([]string, string) {
	return func(t *testing.T, r response) ([]string, string) {
		t.Helper()
		var body map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v\n%s", r.Request.URL, r.StatusCode, err, r.Body)
		}
		var items []map[string]any
		var next *string
		if err := json.Unmarshal(body[key], &items); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		raw, ok := body["next_cursor"]
		if !ok {
			t.Fatalf("no next_cursor beside %s: %s", key, r.Body)
		}
		if err := json.Unmarshal(raw, &next); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range items {
			out = append(out, fmt.Sprint(it[field]))
		}
		if next == nil {
			return out, ""
		}
		u := *r.Request.URL
		q := u.Query()
		q.Set("cursor", *next)
		u.RawQuery = q.Encode()
		return out, u.String()
	}
}

// pageRows reads a list of a page: what row matches, and the next link of
// the pager labelled label.
func pageRows(row, label string) func(t *testing.T, r response) ([]string, string) {
	rowRE := regexp.MustCompile(row)
	pagerRE := regexp.MustCompile(`(?s)<nav class="pager" aria-label="` + regexp.QuoteMeta(label) + `">(.*?)</nav>`)
	nextRE := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	return func(t *testing.T, r response) ([]string, string) {
		t.Helper()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d\n%s", r.Request.URL, r.StatusCode, r.Body)
		}
		var out []string
		for _, m := range rowRE.FindAllStringSubmatch(r.Body, -1) {
			out = append(out, m[1])
		}
		nav := pagerRE.FindStringSubmatch(r.Body)
		if nav == nil {
			return out, ""
		}
		if m := nextRE.FindStringSubmatch(nav[1]); m != nil {
			return out, html.UnescapeString(m[1])
		}
		return out, ""
	}
}

func pagedLists() []pagedList {
	newestRequest := func(sc *pagingScene) {
		sc.p.exec(`INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, status, decided_by, decided_at, decision_note)
			SELECT $1, id, 'age1x', 'age-x25519', 'fp', 'a late reason', 'denied', $2, now(), 'no' FROM clusters WHERE name = 'awi-ciroh'`,
			sc.aliceID, sc.samID)
	}
	newestCredential := func(sc *pagingScene) {
		sc.p.exec(`WITH r AS (
				INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, status, decided_by, decided_at)
				SELECT $1, id, 'age1x', 'age-x25519', 'fp', 'a late reason', 'approved', $2, now() FROM clusters WHERE name = 'awi-ciroh'
				RETURNING id, user_id, cluster_id
			)
			INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext, key_fingerprint, expires_at)
			SELECT id, user_id, cluster_id, 'late-' || id, '$2a$10$x', '\x01', 'fp', now() + interval '1 day' FROM r`, sc.aliceID, sc.samID)
	}
	revokeOne := func(sc *pagingScene) {
		sc.p.exec(`UPDATE credentials SET revoked_at = now(), revoked_by = $1, revoke_reason = 'late'
			WHERE id = (SELECT min(id) FROM credentials WHERE revoked_at IS NULL)`, sc.samID)
	}
	newestToken := func(sc *pagingScene) {
		sc.p.exec(`INSERT INTO api_tokens (user_id, name, token_hash, scopes, expires_at)
			VALUES ($1, 'late', sha256(('late ' || clock_timestamp())::bytea), '{read}', now() + interval '1 day')`, sc.aliceID)
	}
	newestPerson := func(sc *pagingScene) {
		sc.p.exec(`INSERT INTO users (issuer, subject, email) SELECT 'https://idp.example', 'late-' || count(*), 'late@example.org' FROM users`)
	}
	newestSession := func(sc *pagingScene) {
		sc.p.exec(`WITH s AS (INSERT INTO sessions (token, data, expiry) VALUES ('late-' || clock_timestamp(), '\x00', now() + interval '1 hour') RETURNING token)
			INSERT INTO user_sessions (token_hash, user_id) SELECT token, $1 FROM s`, sc.aliceID)
	}
	newestMessage := func(sc *pagingScene) {
		sc.p.exec(`INSERT INTO messages (event, audience, channel, subject, body_text, status) VALUES ('request.created', 'staff', 'none', 'Late', 'text', 'unsent')`)
	}
	aliceSessions := func(sc *pagingScene) []string {
		return sc.p.idsInOrder(`SELECT us.id FROM user_sessions us JOIN sessions s ON s.token = us.token_hash
			WHERE us.user_id = $1 AND s.expiry > now() ORDER BY us.created_at DESC, us.id DESC`, sc.aliceID)
	}
	firstCluster := func(sc *pagingScene) {
		sc.p.exec(`INSERT INTO clusters (name, prometheus_url) SELECT 'a-first-' || count(*), 'https://prometheus.a-first.2i2c.cloud' FROM clusters`)
	}
	lastPending := func(sc *pagingScene) {
		sc.p.exec(`INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification)
			SELECT u.id, (SELECT min(c.id) FROM clusters c WHERE c.name LIKE 'c-%' AND NOT EXISTS
			              (SELECT FROM requests r WHERE r.cluster_id = c.id AND r.user_id = u.id AND r.status = 'pending')),
			       'age1x', 'age-x25519', 'fp', 'a late reason'
			FROM users u WHERE email = 'bob@example.org'`)
	}
	alice := func(sc *pagingScene) *browser { return sc.alice }
	sam := func(sc *pagingScene) *browser { return sc.sam }
	aliceRequests := func(sc *pagingScene) []string {
		return sc.p.idsInOrder(`SELECT id FROM requests WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, sc.aliceID)
	}
	aliceCredentials := func(sc *pagingScene) []string {
		return sc.p.idsInOrder(`SELECT id FROM credentials WHERE user_id = $1 ORDER BY issued_at DESC, id DESC`, sc.aliceID)
	}
	revocations := func(sc *pagingScene) []string {
		return sc.p.idsInOrder(`SELECT id FROM credentials WHERE revoked_at IS NOT NULL ORDER BY revoked_at DESC, id DESC`)
	}
	queue := func(sc *pagingScene) []string {
		return sc.p.idsInOrder(`SELECT id FROM requests WHERE status = 'pending' ORDER BY created_at, id`)
	}
	aliceTokens := func(sc *pagingScene) []string {
		return sc.p.idsInOrder(`SELECT id FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, sc.aliceID)
	}
	return []pagedList{
		{name: "API requests, a customer's own", who: alice, path: "/api/v1/requests", rows: apiRows("requests", "id"),
			want: aliceRequests, arrive: newestRequest},
		{name: "API requests, a customer's pending", who: alice, path: "/api/v1/requests?status=pending", rows: apiRows("requests", "id"),
			want: func(sc *pagingScene) []string {
				return sc.p.idsInOrder(`SELECT id FROM requests WHERE user_id = $1 AND status = 'pending' ORDER BY created_at DESC, id DESC`, sc.aliceID)
			}, arrive: newestRequest},
		{name: "API requests, staff's pending", who: sam, path: "/api/v1/requests?status=pending", rows: apiRows("requests", "id"),
			want: queue, arrive: lastPending, arrivesLast: true},
		{name: "API requests, staff's approved", who: sam, path: "/api/v1/requests?status=approved", rows: apiRows("requests", "id"),
			want: func(sc *pagingScene) []string {
				return sc.p.idsInOrder(`SELECT id FROM requests WHERE status = 'approved' ORDER BY created_at DESC, id DESC`)
			}, arrive: newestCredential},
		{name: "API revocations", who: sam, path: "/api/v1/revocations", rows: apiRows("revocations", "id"),
			want: revocations, arrive: revokeOne},
		{name: "API clusters, staff", who: sam, path: "/api/v1/clusters", rows: apiRows("clusters", "name"),
			want: func(sc *pagingScene) []string { return sc.p.idsInOrder(`SELECT name FROM clusters ORDER BY name`) }, arrive: firstCluster},
		{name: "API clusters, a customer: the open ones", who: alice, path: "/api/v1/clusters", rows: apiRows("clusters", "name"),
			want: func(sc *pagingScene) []string {
				return sc.p.idsInOrder(`SELECT name FROM clusters WHERE enabled ORDER BY name`)
			}, arrive: firstCluster},
		{name: "API tokens", who: alice, path: "/api/v1/tokens", rows: apiRows("tokens", "id"),
			want: aliceTokens, arrive: newestToken},
		{name: "revocations page", who: sam, path: "/staff/revocations", rows: pageRows(`<a href="/credentials/(\d+)">Details</a>`, "Pages of revocations"),
			want: revocations, arrive: revokeOne},
		{name: "staff queue", who: sam, path: "/staff/requests", rows: pageRows(`<article class="card queue-item" id="request-(\d+)"`, "Pages of the queue"),
			want: queue, arrive: lastPending, arrivesLast: true},
		{name: "clusters page", who: sam, path: "/staff/clusters", rows: pageRows(`<a href="/staff/clusters/(\d+)/edit">`, "Pages of clusters"),
			want: func(sc *pagingScene) []string { return sc.p.idsInOrder(`SELECT id FROM clusters ORDER BY name`) }, arrive: firstCluster},
		{name: "dashboard requests", who: alice, path: "/dashboard", rows: pageRows(`<span class="visually-hidden"> of request (\d+)</span>`, "Pages of requests"),
			want: aliceRequests, arrive: newestRequest, first: dashboardRequests},
		{name: "dashboard credentials", who: alice, path: "/dashboard", rows: pageRows(`<a href="/credentials/(\d+)">Details`, "Pages of credentials"),
			want: aliceCredentials, arrive: newestCredential, byState: true},
		{name: "people", who: sam, path: "/staff/people", rows: pageRows(`<tr id="person-(\d+)">`, "Pages of people"),
			want: func(sc *pagingScene) []string {
				return sc.p.idsInOrder(`SELECT id FROM users ORDER BY created_at DESC, id DESC`)
			}, arrive: newestPerson},
		{name: "own sessions", who: alice, path: "/sessions", rows: pageRows(`<tr id="session-(\d+)"`, "Pages of sessions"),
			want: aliceSessions, arrive: newestSession},
		{name: "a person's sessions for staff", who: sam, path: "/staff/people/{alice}/sessions",
			rows: pageRows(`<tr id="session-(\d+)"`, "Pages of sessions"), want: aliceSessions, arrive: newestSession},
		{name: "notifications", who: sam, path: "/staff/notifications", rows: pageRows(`<tr id="message-(\d+)">`, "Pages"),
			want: func(sc *pagingScene) []string { return sc.p.idsInOrder(`SELECT id FROM messages ORDER BY id DESC`) }, arrive: newestMessage},
		{name: "tokens page", who: alice, path: "/tokens", rows: pageRows(`<tr id="token-(\d+)">`, "Pages of tokens"),
			want: aliceTokens, arrive: newestToken},
	}
}

// withPageParam is path with the query parameter k set to v.
func withPageParam(path, k, v string) string {
	u, _ := url.Parse(path)
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestListsArePaged: every list that grows with history comes a page at a
// time: 50 rows unless limit says up to 100 (but the dashboard's overview
// of requests, whose first page holds the newest 10 and links on to pages
// of 50); a limit out of range or a
// cursor the portal did not hand out is refused with a message; following
// the next links walks every row once, in order, while rows arrive between
// the pages; and a customer's lists hold only their own rows.
func TestListsArePaged(t *testing.T) {
	sc := newPagingScene(t)
	for _, l := range pagedLists() {
		l.path = strings.ReplaceAll(l.path, "{alice}", strconv.FormatInt(sc.aliceID, 10))
		t.Run(l.name, func(t *testing.T) {
			b := l.who(sc)
			first := portal.DefaultPageSize
			if l.first != 0 {
				first = l.first
			}
			rows, next := l.rows(t, b.get(l.path))
			if want := min(first, len(l.want(sc))); len(rows) != want {
				t.Errorf("first page: %d rows, want %d", len(rows), want)
			}
			if next == "" {
				t.Errorf("the first page links to no next page")
			} else if second, _ := l.rows(t, b.get(next)); len(second) != min(portal.DefaultPageSize, len(l.want(sc))-len(rows)) {
				t.Errorf("second page: %d rows, want %d", len(second), min(portal.DefaultPageSize, len(l.want(sc))-len(rows)))
			}
			rows, _ = l.rows(t, b.get(withPageParam(l.path, "limit", "100")))
			if want := min(100, len(l.want(sc))); len(rows) != want {
				t.Errorf("limit=100: %d rows, want %d", len(rows), want)
			}
			if len(l.want(sc)) <= 100 {
				t.Errorf("the scene holds %d rows, not more than the largest page", len(l.want(sc)))
			}
			for _, bad := range []string{"101", "0", "-3", "fifty", "1e2"} {
				r := b.get(withPageParam(l.path, "limit", bad))
				if r.StatusCode < 400 || r.StatusCode >= 500 || !strings.Contains(html.UnescapeString(r.Body), "from 1 to 100") {
					t.Errorf("limit=%s: %d, want a 4xx saying the range:\n%.400s", bad, r.StatusCode, r.Body)
				}
			}
			cursors, refusal := cursorParams(l.path)
			for _, bad := range []string{"x", "!!!", "MTIzOmFiYw", strings.Repeat("A", 300), "OTIyMzM3MjAzNjg1NDc3NTgwNzo1", "LTkyMjMzNzIwMzY4NTQ3NzU4MDg6NQ"} {
				for _, param := range cursors {
					r := b.get(withPageParam(l.path, param, bad))
					if r.StatusCode < 400 || r.StatusCode >= 500 || !strings.Contains(html.UnescapeString(r.Body), refusal) {
						t.Errorf("%s=%s: %d, want a 4xx with a message:\n%.400s", param, bad, r.StatusCode, r.Body)
					}
				}
			}

			before := l.want(sc)
			var walked []string
			next = l.path
			for n := 0; next != ""; n++ {
				var got []string
				got, next = l.rows(t, b.get(next))
				if len(got) > portal.DefaultPageSize {
					t.Fatalf("page %d: %d rows", n+1, len(got))
				}
				walked = append(walked, got...)
				if n == 0 {
					l.arrive(sc)
				}
				if n > 100 {
					t.Fatal("the pages do not end")
				}
			}
			want := before
			if l.arrivesLast {
				want = l.want(sc)
				if len(want) != len(before)+1 {
					t.Fatalf("the arriving row did not arrive: %d rows, then %d", len(before), len(want))
				}
			}
			if l.byState {
				walked, want = slices.Clone(walked), slices.Clone(want)
				for i := 0; i < len(walked) && i < len(want); i += portal.DefaultPageSize {
					slices.Sort(walked[i:min(i+portal.DefaultPageSize, len(walked))])
					slices.Sort(want[i:min(i+portal.DefaultPageSize, len(want))])
				}
			}
			if !slices.Equal(walked, want) {
				t.Errorf("walked %d rows, want %d, each once, in order\nwalked %v\nwant   %v", len(walked), len(want), walked, want)
			}
		})
	}
}

// cursorParams are the cursor parameters of a list's page, and what a
// refusal of a malformed one says: the dashboard has one per list, the
// notifications a message's number.
func cursorParams(path string) ([]string, string) {
	switch {
	case strings.HasPrefix(path, "/dashboard"):
		return []string{"requests_cursor", "credentials_cursor"}, "not one this portal handed out"
	case strings.HasPrefix(path, "/staff/notifications"):
		return []string{"before"}, "before is the number of a message"
	}
	return []string{"cursor"}, "not one this portal handed out"
}

// TestPageCounts: the queue says how many wait, the revocations how many
// there are, capped so that the count costs the same with years of history.
func TestPageCounts(t *testing.T) {
	sc := newPagingScene(t)
	q := sc.sam.get("/staff/requests")
	if want := strconv.Itoa(sc.p.count(`SELECT count(*) FROM requests WHERE status = 'pending'`)) + " waiting"; !strings.Contains(q.Body, want) {
		t.Errorf("the queue does not say %q", want)
	}
	r := sc.sam.get("/staff/revocations")
	if want := strconv.Itoa(sc.p.count(`SELECT count(*) FROM credentials WHERE revoked_at IS NOT NULL`)) + " revoked"; !strings.Contains(r.Body, want) {
		t.Errorf("the revocations do not say %q", want)
	}
	sc.p.exec(`UPDATE credentials SET revoked_at = issued_at + interval '1 day', revoked_by = $1, revoke_reason = 'x' WHERE revoked_at IS NULL`, sc.samID)
	sc.p.exec(`WITH r AS (
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, status, decided_by, decided_at)
			SELECT $1, id, 'age1x', 'age-x25519', 'fp', 'a good reason here', 'approved', $2, now()
			FROM clusters, generate_series(1, 10) WHERE name = 'awi-ciroh' OR name LIKE 'c-0%'
			RETURNING id, user_id, cluster_id
		)
		INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext, key_fingerprint, expires_at, revoked_at, revoked_by, revoke_reason)
		SELECT id, user_id, cluster_id, 'more-' || id, '$2a$10$x', '\x01', 'fp', now() + interval '1 day', now(), $2, 'x' FROM r`, sc.aliceID, sc.samID)
	if n := sc.p.count(`SELECT count(*) FROM credentials WHERE revoked_at IS NOT NULL`); n <= portal.CountCap {
		t.Fatalf("only %d revocations", n)
	}
	if r := sc.sam.get("/staff/revocations"); !strings.Contains(r.Body, "more than 1,000 revoked") {
		t.Errorf("past the cap, the revocations do not say “more than 1,000 revoked”")
	}
}

// TestPagerLeadsBackToTheStart: a later page links back to the first, which
// has no such link, and the links keep the limit asked for.
func TestPagerLeadsBackToTheStart(t *testing.T) {
	sc := newPagingScene(t)
	tests := []struct {
		who              *browser
		path, row, label string
		start            string
	}{
		{sc.sam, "/staff/revocations?limit=20", `<a href="/credentials/(\d+)">Details</a>`, "Pages of revocations", "Newest"},
		{sc.sam, "/staff/requests?limit=20", `<article class="card queue-item" id="request-(\d+)"`, "Pages of the queue", "First"},
		{sc.alice, "/dashboard?limit=20", `<span class="visually-hidden"> of request (\d+)</span>`, "Pages of requests", "Newest"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			startRE := regexp.MustCompile(`<a href="([^"]+)">` + tt.start + `</a>`)
			rows := pageRows(tt.row, tt.label)
			first := tt.who.get(tt.path)
			firstRows, next := rows(t, first)
			if len(firstRows) != 20 || next == "" || !strings.Contains(next, "limit=20") {
				t.Fatalf("first page: %d rows, next link %q; want 20 and a link keeping limit=20", len(firstRows), next)
			}
			if startRE.MatchString(first.Body) {
				t.Errorf("the first page links to %q", tt.start)
			}
			second := tt.who.get(next)
			if secondRows, _ := rows(t, second); len(secondRows) != 20 || slices.Contains(secondRows, firstRows[19]) {
				t.Errorf("second page %v, want 20 rows after the first page's", secondRows)
			}
			m := startRE.FindStringSubmatch(second.Body)
			if m == nil {
				t.Fatalf("the second page has no %q link", tt.start)
			}
			back := html.UnescapeString(m[1])
			if !strings.Contains(back, "limit=20") || strings.Contains(back, "cursor=") {
				t.Errorf("%q link %q, want the first page with limit=20", tt.start, back)
			}
			if again, _ := rows(t, tt.who.get(back)); !slices.Equal(again, firstRows) {
				t.Errorf("back at the start: %v, want the first page's %v", again, firstRows)
			}
		})
	}
}
