package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// pageBudgets is how many SQL statements each signed-in page view may run,
// by route, as measured when it was last set: the opening of its session
// with its person (store.OpenSession) included, as when the replica does
// not hold the session (authCache), BEGIN and COMMIT counted as
// statements; a view of a session the replica holds does not read it. Set them tight, to the count measured: a page that
// needs more should say so here, in review. Every GET page route has an
// entry; TestPageQueryBudget fails for one without.
var pageBudgets = map[string]int{
	"/":                                   1,
	"/dashboard":                          3,
	"/requests/new":                       2,
	"/requests/:id":                       3,
	"/requests/:id/cancel":                2,
	"/credentials/:id":                    3,
	"/credentials/:id/revoke":             3,
	"/credentials/:id/report-compromised": 3,
	"/sessions":                           3,
	"/tokens":                             2,
	"/staff":                              1,
	"/staff/requests":                     5,
	"/staff/requests/:id/approve":         4,
	"/staff/requests/:id/deny":            3,
	"/staff/clusters":                     3,
	"/staff/clusters/new":                 2,
	"/staff/clusters/:id/edit":            3,
	"/staff/clusters/:id/sync-token":      3,
	"/staff/clusters/:id/sync-token/new":  4,
	"/staff/revocations":                  4, // with the count of revocations
	"/staff/people":                       3,
	"/staff/people/:id/sessions":          4,
	"/staff/notifications":                3,
	"/staff/audit":                        5,
}

// opensSession reports whether s is store.OpenSession's statement.
func opensSession(s statement) bool {
	return strings.Contains(s.SQL, "UPDATE user_sessions SET last_seen_at")
}

// pageRoutes are the router's GET routes of pages a signed-in person views:
// not the API (its own budget is its callers'), static files, probes,
// metrics, the development identity provider, the two steps of a sign-in,
// downloads or exports.
func (p *testPortal) pageRoutes() []string {
	var out []string
	for _, r := range p.Server.echo.Routes() {
		path := r.Path
		switch {
		case r.Method != http.MethodGet,
			strings.HasPrefix(path, "/api/"), strings.HasPrefix(path, "/static/"), strings.HasPrefix(path, "/oidc/"),
			path == "/healthz", path == "/readyz", path == "/metrics", path == "/login", path == "/auth/callback",
			strings.HasSuffix(path, ".age"), strings.HasPrefix(path, "/staff/audit/export"):
			continue
		}
		out = append(out, path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// budgetPortal is a portal whose statements are logged, with sessions that
// refresh no idle expiry while a test runs, so that no view's count has a
// refresh in it by chance.
func budgetPortal(t *testing.T) (*testPortal, *statementLog) {
	t.Helper()
	log := &statementLog{}
	p := newPortal(t, portalOptions{tracer: log,
		sessions: &SessionConfig{IdleTimeout: 4 * time.Hour, Lifetime: 8 * time.Hour, Refresh: 2 * time.Hour}})
	return p, log
}

// view fetches path as b, redirects not followed, and returns the
// statements the request ran and the page. It fails the test unless the
// answer is want.
func (b *browser) view(log *statementLog, path string, want int) (statements, string) {
	b.t.Helper()
	log.take()
	r := b.noFollow().get(path)
	ran := log.take()
	if r.StatusCode != want {
		b.t.Fatalf("%s: %d, want %d\n%s", path, r.StatusCode, want, r.Body)
	}
	return ran, r.Body
}

// TestPageQueryBudget visits every signed-in page route of the router, as
// the person who may see it and with real objects behind it, and counts the
// statements each view runs against its budget in pageBudgets.
func TestPageQueryBudget(t *testing.T) {
	t.Parallel()
	p, log := budgetPortal(t)
	cluster := p.addCluster("awi-ciroh")
	p.addCluster("leap")
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	cred := p.issue(alice, sam, "awi-ciroh")
	issuedReq := p.count(`SELECT request_id FROM credentials WHERE id = $1`, cred.ID)
	pending := alice.requestAccess("leap", newKey(t).Recipient().String(), "Dashboards for the research team.")
	page := sam.get(fmt.Sprintf("/staff/clusters/%d/sync-token", cluster.ID))
	if r := sam.noFollow().post(fmt.Sprintf("/staff/clusters/%d/sync-token", cluster.ID), url.Values{"csrf": {csrfToken(t, page.Body)}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotating the sync token: %d\n%s", r.StatusCode, r.Body)
	}
	aliceID := p.userID("alice@example.org")

	visits := map[string]struct {
		as   *browser
		path string
		want int
	}{
		"/":                                   {alice, "/", http.StatusOK},
		"/dashboard":                          {alice, "/dashboard", http.StatusOK},
		"/requests/new":                       {alice, "/requests/new", http.StatusOK},
		"/requests/:id":                       {alice, fmt.Sprintf("/requests/%d", issuedReq), http.StatusOK},
		"/requests/:id/cancel":                {alice, fmt.Sprintf("/requests/%d/cancel", pending), http.StatusOK},
		"/credentials/:id":                    {alice, fmt.Sprintf("/credentials/%d", cred.ID), http.StatusOK},
		"/credentials/:id/revoke":             {alice, fmt.Sprintf("/credentials/%d/revoke", cred.ID), http.StatusOK},
		"/credentials/:id/report-compromised": {alice, fmt.Sprintf("/credentials/%d/report-compromised", cred.ID), http.StatusOK},
		"/sessions":                           {alice, "/sessions", http.StatusOK},
		"/tokens":                             {alice, "/tokens", http.StatusOK},
		"/staff":                              {sam, "/staff", http.StatusSeeOther},
		"/staff/requests":                     {sam, "/staff/requests", http.StatusOK},
		"/staff/requests/:id/approve":         {sam, fmt.Sprintf("/staff/requests/%d/approve", pending), http.StatusOK},
		"/staff/requests/:id/deny":            {sam, fmt.Sprintf("/staff/requests/%d/deny", pending), http.StatusOK},
		"/staff/clusters":                     {sam, "/staff/clusters", http.StatusOK},
		"/staff/clusters/new":                 {sam, "/staff/clusters/new", http.StatusOK},
		"/staff/clusters/:id/edit":            {sam, fmt.Sprintf("/staff/clusters/%d/edit", cluster.ID), http.StatusOK},
		"/staff/clusters/:id/sync-token":      {sam, fmt.Sprintf("/staff/clusters/%d/sync-token", cluster.ID), http.StatusOK},
		"/staff/clusters/:id/sync-token/new":  {sam, fmt.Sprintf("/staff/clusters/%d/sync-token/new", cluster.ID), http.StatusOK},
		"/staff/revocations":                  {sam, "/staff/revocations", http.StatusOK},
		"/staff/people":                       {sam, "/staff/people?q=alice", http.StatusOK},
		"/staff/people/:id/sessions":          {sam, fmt.Sprintf("/staff/people/%d/sessions", aliceID), http.StatusOK},
		"/staff/notifications":                {sam, "/staff/notifications", http.StatusOK},
		"/staff/audit":                        {sam, "/staff/audit", http.StatusOK},
	}

	routes := p.pageRoutes()
	for _, route := range routes {
		budget, ok := pageBudgets[route]
		v, visited := visits[route]
		if !ok || !visited {
			t.Errorf("GET %s is a page route without a statement budget or a visit: add it to pageBudgets and to this test's visits", route)
			continue
		}
		// Holding no session and no list of clusters, as after a reconnect.
		p.Server.authCache.Listening(true)
		p.Server.openClusters.Listening(true)
		ran, _ := v.as.view(log, v.path, v.want)
		// Then held: within a few views, one reads no session. (A view that
		// writes its session, or the late notification of an earlier
		// write, drops it once; the next view reads and holds it again.)
		var kept statements
		for range 3 {
			if kept, _ = v.as.view(log, v.path, v.want); !slices.ContainsFunc(kept, opensSession) {
				break
			}
		}
		if slices.ContainsFunc(kept, opensSession) {
			t.Errorf("GET %s read its session at every view, never held:%s", v.path, kept)
		}
		if len(ran) > budget {
			t.Errorf("GET %s ran %d statements, budget %d: measured %d vs budget %d for pageBudgets[%q] (raise it only if the page needs them):%s",
				v.path, len(ran), budget, len(ran), budget, route, ran)
		} else if len(ran) < budget {
			t.Errorf("GET %s ran %d statements, under its budget %d: measured %d vs budget %d, lower pageBudgets[%q] to %d",
				v.path, len(ran), budget, len(ran), budget, route, len(ran))
		}
	}
	for route := range pageBudgets {
		if !slices.Contains(routes, route) {
			t.Errorf("pageBudgets has %s, which the router no longer serves: remove it", route)
		}
	}
}

// TestPageStatementsDoNotGrowWithRows: each list page runs as many
// statements with 60 rows in its list as with 1; a statement per row (N+1)
// would show here. Lists whose 60th row is past a default page of 50 are
// asked for 100.
func TestPageStatementsDoNotGrowWithRows(t *testing.T) {
	t.Parallel()
	p, log := budgetPortal(t)
	first := p.addCluster("awi-ciroh")
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	ctx := context.Background()
	aliceID := p.userID("alice@example.org")
	key := newKey(t).Recipient().String()
	request := func(c *portal.Cluster) {
		t.Helper()
		r := &portal.Request{UserID: aliceID, ClusterID: c.ID, PublicKey: key, KeyType: portal.KeyAgeX25519,
			KeyFingerprint: "SHA256:test", Justification: "Dashboards for the research team."}
		if err := p.Store.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	request(first)
	token := func(i int) {
		t.Helper()
		tok := &portal.Token{UserID: aliceID, Name: fmt.Sprintf("script %d", i), Scopes: []portal.Scope{portal.ScopeRead},
			ExpiresAt: time.Now().Add(24 * time.Hour)}
		hash := sha256.Sum256(fmt.Appendf(nil, "token %d", i))
		if err := p.Store.CreateToken(ctx, tok, hash[:]); err != nil {
			t.Fatal(err)
		}
	}
	token(0)
	person := func(i int) {
		t.Helper()
		u := &portal.User{Issuer: "https://idp.example.org", Subject: fmt.Sprintf("person-%d", i),
			Email: fmt.Sprintf("person%d@example.org", i), EmailVerified: true, Role: portal.RoleCustomer}
		if err := p.Store.UpsertUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	person(0)

	pages := []struct {
		as   *browser
		path string
		last string // what the page shows of the 60th row
	}{
		{alice, "/dashboard", "cluster-59"},
		{alice, "/tokens", "script 59"},
		{sam, "/staff/requests?limit=100", "cluster-59"}, // past the first 50, oldest first
		{sam, "/staff/clusters?limit=100", "cluster-59"},
		{sam, "/staff/people?q=person", "person59@example.org"},
	}
	one := make([]statements, len(pages))
	for i, pg := range pages {
		p.Server.authCache.Listening(true) // each view reads its session
		one[i], _ = pg.as.view(log, pg.path, http.StatusOK)
	}
	for i := 1; i < 60; i++ {
		request(p.addCluster(fmt.Sprintf("cluster-%02d", i)))
		token(i)
		person(i)
	}
	for i, pg := range pages {
		p.Server.authCache.Listening(true)
		many, body := pg.as.view(log, pg.path, http.StatusOK)
		if !strings.Contains(body, pg.last) {
			t.Errorf("GET %s does not show the 60th row (%q):\n%s", pg.path, pg.last, body)
		}
		if len(many) != len(one[i]) {
			t.Errorf("GET %s ran %d statements with 1 row and %d with 60:\nwith 1:%s\nwith 60:%s", pg.path, len(one[i]), len(many), one[i], many)
		}
	}
}
