package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/notify"
	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// webConfigBench is a portal on a fresh database, served over real HTTP,
// with one cluster holding many active credentials and a sync token for it.
type webConfigBench struct {
	srv     *Server
	cluster *portal.Cluster
	url     string // of the cluster's web config
	token   string
	client  *http.Client
}

// newWebConfigBench starts a portal as newPortal does (which wants a
// *testing.T), without a sign-in provider, and gives cluster awi-ciroh n
// active credentials. The rows are written by three INSERTs at once; every
// credential shares one bcrypt hash at the portal's cost, as hashing 1,000
// passwords would only slow the set-up, and the served file is the same size.
func newWebConfigBench(b *testing.B, n int) *webConfigBench {
	b.Helper()
	ctx := context.Background()
	st := store.New(pgtest.New(b))
	// As in production, a log line per request, here thrown away.
	log := applog.New(io.Discard, slog.LevelInfo)
	wf := workflow.New(st, workflow.Options{Log: log})
	hubCtx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	hub := notify.New(st.Pool(), log)
	go hub.Run(hubCtx)

	ts := httptest.NewUnstartedServer(nil)
	base, _ := url.Parse("http://" + ts.Listener.Addr().String())
	cfg := Config{BaseURL: base, Version: "bench", Access: testPolicy,
		Sessions: SessionConfig{IdleTimeout: time.Hour, Lifetime: 2 * time.Hour}}
	signIn := oidc.New(oidc.Config{Issuer: "https://idp.example.org", ClientID: "portal", ClientSecret: "secret",
		RedirectURL: RedirectURL(base)}, log)
	srv, err := New(cfg, st, wf, signIn, hub, log)
	if err != nil {
		b.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	b.Cleanup(ts.Close)
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	b.Cleanup(transport.CloseIdleConnections)

	cluster := testCluster("awi-ciroh")
	if err := st.CreateCluster(ctx, cluster); err != nil {
		b.Fatal(err)
	}
	staff := &portal.User{Issuer: "https://idp.example.org", Subject: "sam", Email: "sam@2i2c.org", Role: portal.RoleStaff}
	if err := st.UpsertUser(ctx, staff); err != nil {
		b.Fatal(err)
	}
	rcpt, err := issue.ParseRecipient(newKey(b).Recipient().String())
	if err != nil {
		b.Fatal(err)
	}
	hash, err := issue.HashPassword(issue.NewPassword(), issue.DefaultBcryptCost)
	if err != nil {
		b.Fatal(err)
	}
	// The web config never reads the ciphertext; any age file will do.
	ciphertext, err := issue.Encrypt([]byte("credentials.txt"), rcpt)
	if err != nil {
		b.Fatal(err)
	}
	usernames := make([]string, 0, n)
	for seen := map[string]bool{}; len(usernames) < n; {
		if u := issue.NewUsername(); !seen[u] {
			seen[u] = true
			usernames = append(usernames, u)
		}
	}
	// n customers, each with an approved request and its credential.
	_, err = st.Pool().Exec(ctx, `
		WITH customers AS (
			INSERT INTO users (issuer, subject, email, role)
			SELECT 'https://idp.example.org', 'customer-' || i, 'customer-' || i || '@example.org', 'customer'
			FROM generate_series(1, $1::int) AS i
			RETURNING id
		), approved AS (
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
			                      status, decided_by, decided_at)
			SELECT id, $2, $3, $4, $5, 'Dashboards for the research team.', 'approved', $6, now()
			FROM customers
			RETURNING id, user_id
		)
		INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext,
		                         key_fingerprint, expires_at)
		SELECT a.id, a.user_id, $2, u.username, $7, $8, $5, now() + interval '90 days'
		FROM (SELECT id, user_id, row_number() OVER (ORDER BY id) AS i FROM approved) AS a
		JOIN unnest($9::text[]) WITH ORDINALITY AS u (username, i) USING (i)`,
		n, cluster.ID, rcpt.Key, rcpt.Type, rcpt.Fingerprint, staff.ID, hash, ciphertext, usernames)
	if err != nil {
		b.Fatal(err)
	}
	token, err := wf.RotateSyncToken(ctx, workflow.Actor{User: staff}, cluster.Name)
	if err != nil {
		b.Fatal(err)
	}
	if cluster, err = st.ClusterByID(ctx, cluster.ID); err != nil { // with its sync token
		b.Fatal(err)
	}

	w := &webConfigBench{srv: srv, cluster: cluster, token: token, client: &http.Client{Transport: transport},
		url: ts.URL + "/api/v1/clusters/" + cluster.Name + "/web-config.yml"}
	status, _, body := w.get(b, "")
	if users, _, err := webconfig.ParseUsers(body); status != http.StatusOK || err != nil || len(users) != n {
		b.Fatalf("web config: %d, %d users (%v), want 200 and %d users", status, len(users), err, n)
	}
	return w
}

// get fetches the web config as the agent does, with If-None-Match when
// etag is set, and returns the status, the ETag and the body.
func (w *webConfigBench) get(b *testing.B, etag string) (int, string, []byte) {
	req, err := http.NewRequest(http.MethodGet, w.url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("ETag"), body
}

// BenchmarkWebConfig1000 times a cluster's web config with 1,000 active
// credentials: over HTTP as the agent fetches it (client, server and
// PostgreSQL in one process, so B/op and allocs/op count the client's share
// too); renderPublication alone, which is the server's work without HTTP
// (the query and the rendering); and webconfig.MarshalUsers alone.
func BenchmarkWebConfig1000(b *testing.B) {
	w := newWebConfigBench(b, 1000)

	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			status, _, body := w.get(b, "")
			if status != http.StatusOK {
				b.Fatalf("status %d", status)
			}
			size = len(body)
		}
		b.ReportMetric(float64(size), "body-B")
	})

	c := w.srv.echo.NewContext(httptest.NewRequest(http.MethodGet, w.url, nil), httptest.NewRecorder())
	b.Run("query", func(b *testing.B) { // what a 304 costs: the query and the ETag
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.srv.publicationOf(c, w.cluster, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("render", func(b *testing.B) { // what a 200 costs: the query, the document and its checks
		b.ReportAllocs()
		for b.Loop() {
			p, err := w.srv.publicationOf(c, w.cluster, "")
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := p.render(); err != nil {
				b.Fatal(err)
			}
		}
	})

	creds, err := w.srv.wf.ActiveCredentials(context.Background(), w.cluster)
	if err != nil {
		b.Fatal(err)
	}
	users, expires := make(webconfig.Users, len(creds)), make(webconfig.Expiries, len(creds))
	for _, cr := range creds {
		users[cr.Username] = cr.PasswordHash
		expires[cr.Username] = cr.ExpiresAt
	}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := webconfig.MarshalUsers(users, expires); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWebConfig304 times the agent's check that nothing changed:
// If-None-Match with the current ETag and no wait. The server renders the
// whole file to compare ETags, so this saves the transfer, not the work.
func BenchmarkWebConfig304(b *testing.B) {
	w := newWebConfigBench(b, 1000)
	_, etag, _ := w.get(b, "")
	b.ReportAllocs()
	for b.Loop() {
		if status, _, _ := w.get(b, etag); status != http.StatusNotModified {
			b.Fatalf("status %d, want 304", status)
		}
	}
}

// BenchmarkPrometheusAuth measures how many authenticated requests per second
// Prometheus answers with 200 portal-issued users in its web config, with
// their hashes at the portal's bcrypt cost and at bcrypt's usual 10: a
// trivial handler behind exporter-toolkit's web package, as startPrometheus
// serves it, queried by parallel clients that cycle over the 200 users with
// their right passwords.
//
// exporter-toolkit v0.20 re-reads and parses the web config at every request,
// runs bcrypt under one mutex (so parallel clients do not add throughput),
// and caches 100 (user, hash, password) results with random eviction. 200
// users cycling defeat most of that cache, which is the realistic case of many
// dashboards; fewer than 100 users would measure the cache instead. Once every
// user has been seen, about one request in six (18%, by simulation of the
// eviction) is still a hit: so one cycle over the users warms the cache
// before timing, and the cycle carries on across the benchmark's runs rather
// than starting again with the users the cache holds.
func BenchmarkPrometheusAuth(b *testing.B) {
	const users = 200
	for _, cost := range []int{issue.DefaultBcryptCost, 10} {
		names, passwords := make([]string, users), make([]string, users)
		hashes := make([]string, users)
		errs := make([]error, users)
		var wg sync.WaitGroup
		for i := range users {
			names[i], passwords[i] = issue.NewUsername(), issue.NewPassword()
			wg.Go(func() { hashes[i], errs[i] = issue.HashPassword(passwords[i], cost) })
		}
		wg.Wait()
		config := webconfig.Users{}
		for i := range users {
			if errs[i] != nil {
				b.Fatal(errs[i])
			}
			config[names[i]] = hashes[i]
		}
		doc, err := webconfig.MarshalUsers(config, nil)
		if err != nil {
			b.Fatal(err)
		}
		file := filepath.Join(b.TempDir(), "web-config.yml")
		if err := os.WriteFile(file, doc, 0o600); err != nil {
			b.Fatal(err)
		}
		prom := startPrometheus(b, file) + "/api/v1/query"
		transport := &http.Transport{MaxIdleConnsPerHost: 64}
		b.Cleanup(transport.CloseIdleConnections)
		client := &http.Client{Transport: transport}
		var next atomic.Uint64
		// query asks as the next user in the cycle and returns the status.
		query := func() (int, error) {
			i := next.Add(1) % users
			req, err := http.NewRequest(http.MethodGet, prom, nil)
			if err != nil {
				return 0, err
			}
			req.SetBasicAuth(names[i], passwords[i])
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		for range users {
			if status, err := query(); status != http.StatusOK || err != nil {
				b.Fatalf("warming up: %d %v", status, err)
			}
		}

		b.Run(fmt.Sprintf("cost=%d", cost), func(b *testing.B) {
			var refused atomic.Int64
			b.SetParallelism(4) // 4 clients per core
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					status, err := query()
					if err != nil {
						b.Error(err)
						return
					}
					if status != http.StatusOK {
						refused.Add(1)
					}
				}
			})
			if n := refused.Load(); n > 0 {
				b.Fatalf("%d of %d requests refused", n, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
