package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// BenchmarkAPIAuth times one small API call (GET /api/v1/clusters) over
// HTTP on a real server and PostgreSQL, authenticated by a browser's
// session cookie and by a personal access token: the difference is the
// added cost of the bearer check per request, whose goal is at most 0.2 ms
// over a cookie session. Tokens are spread so that none leaves its call
// budget (100 calls at once, 10 a second after).
func BenchmarkAPIAuth(b *testing.B) {
	p := newPortal(b, portalOptions{})
	p.addCluster("awi-ciroh")
	get := func(b *testing.B, do func() response) {
		b.Helper()
		for range b.N {
			if r := do(); r.StatusCode != http.StatusOK {
				b.Fatalf("GET /api/v1/clusters: %d %s", r.StatusCode, r.Body)
			}
		}
	}
	b.Run("cookie session", func(b *testing.B) {
		alice := p.signedIn("alice@example.org")
		b.ResetTimer()
		get(b, func() response { return alice.get("/api/v1/clusters") })
	})
	b.Run("bearer token", func(b *testing.B) {
		const perToken = 90
		var scripts []*script
		for i := 0; len(scripts)*perToken < b.N; i++ {
			// Made through the workflow: the page's and the API's limits on
			// new tokens are for people, not for a benchmark.
			owner := &portal.User{Issuer: "https://idp.example.org", Subject: fmt.Sprintf("bot-%d-%d", b.N, i),
				Email: fmt.Sprintf("bot%d@example.org", i), Role: portal.RoleCustomer}
			if err := p.Store.UpsertUser(context.Background(), owner); err != nil {
				b.Fatal(err)
			}
			for j := 0; j < portal.MaxActiveTokens && len(scripts)*perToken < b.N; j++ {
				nt, err := p.Server.wf.CreateToken(context.Background(), workflow.Actor{User: owner},
					workflow.TokenInput{Name: fmt.Sprintf("bench %d", j), Scopes: []string{"read"}})
				if err != nil {
					b.Fatal(err)
				}
				scripts = append(scripts, p.script(nt.Secret))
			}
		}
		b.ResetTimer()
		n := 0
		get(b, func() response {
			sc := scripts[n/perToken]
			n++
			return sc.call(http.MethodGet, "/api/v1/clusters", "")
		})
	})
}
