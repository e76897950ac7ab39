package server

import (
	"fmt"
	"io"
	"net/http"
	"testing"
)

// BenchmarkPages times each signed-in customer page, and the API's list of
// requests, over HTTP on a real server and PostgreSQL, for a customer with
// 200 credentials (a third of them revoked, some expiring within the
// reminder's reach) and 200 requests, requested in parallel as the load test
// does. The figures to watch are ns/op and allocs/op: the server renders the
// pages, so what the templates cost shows beside the statements' cost.
func BenchmarkPages(b *testing.B) {
	p := newPortal(b, portalOptions{})
	alice, requestID, credentialID := seedCustomerPages(p)
	for _, pg := range []struct{ name, path string }{
		{"dashboard", "/dashboard"},
		// The first page as it was before the overview: 50 requests.
		{"dashboard 50 requests", "/dashboard?limit=50"},
		{"request", fmt.Sprintf("/requests/%d", requestID)},
		{"credential", fmt.Sprintf("/credentials/%d", credentialID)},
		{"new request", "/requests/new"},
		{"sessions", "/sessions"},
		{"tokens", "/tokens"},
		{"API requests", "/api/v1/requests"},
	} {
		path := pg.path
		b.Run(pg.name, func(b *testing.B) {
			url := p.URL + path
			if r := alice.get(path); r.StatusCode != http.StatusOK {
				b.Fatalf("GET %s: %d\n%s", path, r.StatusCode, r.Body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := alice.client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("GET %s: %d", path, resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// seedCustomerPages gives p the cluster awi-ciroh and alice, signed in, with
// 200 approved requests and their credentials (a third revoked, a quarter
// for 10 days only, half never downloaded) and 10 tokens. It returns her
// browser, her newest request and its credential.
func seedCustomerPages(p *testPortal) (alice *browser, requestID, credentialID int) {
	p.t.Helper()
	p.addCluster("awi-ciroh")
	alice = p.signedIn("alice@example.org")
	p.signedIn("sam@2i2c.org")
	aliceID := p.count(`SELECT id FROM users WHERE email = 'alice@example.org'`)
	samID := p.count(`SELECT id FROM users WHERE email = 'sam@2i2c.org'`)
	p.exec(`WITH r AS (
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
			                      status, decided_by, decided_at, created_at)
			SELECT $1, (SELECT id FROM clusters WHERE name = 'awi-ciroh'),
			       'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p', 'age-x25519',
			       'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p',
			       'Dashboards of the hub''s usage for the research team.',
			       'approved', $2, date_trunc('hour', now()) - n * interval '1 hour',
			       date_trunc('hour', now()) - n * interval '1 hour' - interval '5 minutes'
			FROM generate_series(1, 200) n
			RETURNING id, user_id, cluster_id, key_fingerprint, created_at
		)
		INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext, key_fingerprint,
		                         issued_at, expires_at, revoked_at, revoked_by, revoke_reason, download_count)
		SELECT id, user_id, cluster_id, 'awi-ciroh-alice-' || id, '$2a$10$x', '\x01', key_fingerprint,
		       created_at, created_at + CASE WHEN id % 4 = 0 THEN interval '10 days' ELSE interval '90 days' END,
		       CASE WHEN id % 3 = 0 THEN created_at + interval '1 day' END, CASE WHEN id % 3 = 0 THEN $2::bigint END,
		       CASE WHEN id % 3 = 0 THEN 'rotated' ELSE '' END, id % 2
		FROM r`, aliceID, samID)
	p.exec(`INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at, expires_at)
		SELECT $1::bigint, 'grafana ' || n, sha256(($1::bigint || ':' || n)::bytea), '{read}',
		       now() - n * interval '1 day', now() + interval '30 days'
		FROM generate_series(1, 10) n`, aliceID)
	requestID = p.count(`SELECT max(id) FROM requests WHERE user_id = $1`, aliceID)
	credentialID = p.count(`SELECT id FROM credentials WHERE request_id = $1`, requestID)

	return alice, requestID, credentialID
}
