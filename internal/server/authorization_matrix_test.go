package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// The authorization matrix: every route the router holds, tried by every
// kind of caller on real objects, each answer's exact status checked, and
// every refusal checked to have changed nothing. A route added to routes()
// without a row here fails TestAuthorizationMatrix, naming the route.
//
// Who calls. Customers A (alice) and B (bob); staff S (sam) and S2 (sara),
// who has a pending request of her own. A and S act on A's objects, B on
// A's objects (someone else's IDs), S2 on her own request on request routes
// and on A's objects elsewhere. On the API also: a token of each scope of
// A's and of S's (A's decide and admin tokens are those of someone who was
// staff when making them, now a customer: they give nothing more), a read
// and request token of B's, and the sync token of a cluster's agent.

// mxActor is a column of the matrix: one kind of caller.
type mxActor string

// The callers. sess* are browser sessions, tok* personal access tokens.
const (
	anon       mxActor = "anon"
	sessA      mxActor = "A"
	sessB      mxActor = "B"
	sessS      mxActor = "S"
	sessS2     mxActor = "S2"
	tokARead   mxActor = "A:read"
	tokAReq    mxActor = "A:request"
	tokADecide mxActor = "A:decide"
	tokAAdmin  mxActor = "A:admin"
	tokB       mxActor = "B:read+request"
	tokSRead   mxActor = "S:read"
	tokSReq    mxActor = "S:request"
	tokSDecide mxActor = "S:decide"
	tokSAdmin  mxActor = "S:admin"
	syncOwn    mxActor = "agent"       // the sync token of the cluster the path names
	syncOther  mxActor = "agent:other" // the sync token of another cluster
)

var (
	pageActors = []mxActor{anon, sessA, sessB, sessS, sessS2}
	apiActors  = []mxActor{anon, sessA, sessB, sessS, sessS2, tokARead, tokAReq, tokADecide, tokAAdmin, tokB,
		tokSRead, tokSReq, tokSDecide, tokSAdmin, syncOwn}
	publicationActors = []mxActor{anon, sessA, tokARead, syncOwn, syncOther}
)

// tokenOf is, for a token column, whose token it is (as the session column
// of that person) and its scopes.
var tokenOf = map[mxActor]struct {
	owner  mxActor
	scopes []portal.Scope
}{
	tokARead:   {sessA, []portal.Scope{portal.ScopeRead}},
	tokAReq:    {sessA, []portal.Scope{portal.ScopeRequest}},
	tokADecide: {sessA, []portal.Scope{portal.ScopeDecide}},
	tokAAdmin:  {sessA, []portal.Scope{portal.ScopeAdmin}},
	tokB:       {sessB, []portal.Scope{portal.ScopeRead, portal.ScopeRequest}},
	tokSRead:   {sessS, []portal.Scope{portal.ScopeRead}},
	tokSReq:    {sessS, []portal.Scope{portal.ScopeRequest}},
	tokSDecide: {sessS, []portal.Scope{portal.ScopeDecide}},
	tokSAdmin:  {sessS, []portal.Scope{portal.ScopeAdmin}},
}

// toLogin is the want of an anonymous page: 303 to /login, coming back.
const toLogin = -303

// mxObj is the object a row's :id or :name names.
type mxObj int

const (
	objNone       mxObj = iota
	objPending          // A's pending request; S2's own for S2
	objCredential       // A's credential
	objSession          // another session of A's
	objToken            // a token of A's
	objPerson           // A, with a session and a token to end
	objCluster          // the cluster of A's credential, by ID or name
	objMessage          // a failed message in the outbox
	objDevMail          // a message development mode captured
)

// mxRow is one route and what each caller gets from it.
type mxRow struct {
	method, route string
	obj           mxObj
	// query is added to the path; {user} is A's ID, {cred} A's credential.
	query string
	// body is the form (pages) or JSON (API) sent, correctly formed.
	body func(w *mxWorld) string
	want map[mxActor]int
	// changes marks a GET that changes state (the download counts): it
	// gets fresh objects like a POST.
	changes bool
}

// pg is the want of a page route for anon, A, B, S and S2.
func pg(anonWant, a, b, s, s2 int) map[mxActor]int {
	return map[mxActor]int{anon: anonWant, sessA: a, sessB: b, sessS: s, sessS2: s2}
}

// everyone is the same want for every page caller.
func everyone(st int) map[mxActor]int { return pg(st, st, st, st, st) }

// api is the want of an API route whose tokens need scope, for the browser
// sessions of A, B, S and S2. Someone not signed in, and an agent's sync
// token, get 401. A token gets what its owner's session gets when it holds
// the scope (a staff scope only while its owner is staff), else 403: a
// token is never more than its owner, and only what its scopes say.
// sessionOnly routes are refused to every token. except overrides cells.
func api(scope portal.Scope, a, b, s, s2 int, except ...any) map[mxActor]int {
	m := map[mxActor]int{anon: http.StatusUnauthorized, syncOwn: http.StatusUnauthorized, sessA: a, sessB: b, sessS: s, sessS2: s2}
	for tok, o := range tokenOf {
		owner := m[o.owner]
		switch {
		case scope == sessionOnly, !slices.Contains(o.scopes, scope):
			m[tok] = s403
		case scope.StaffOnly() && o.owner != sessS:
			m[tok] = s403
		default:
			m[tok] = owner
		}
	}
	for i := 0; i+1 < len(except); i += 2 {
		m[except[i].(mxActor)] = except[i+1].(int)
	}
	return m
}

// The statuses the matrix holds, short so that its rows read as a table.
const (
	s200 = http.StatusOK
	s201 = http.StatusCreated
	s302 = http.StatusFound
	s303 = http.StatusSeeOther
	s400 = http.StatusBadRequest
	s401 = http.StatusUnauthorized
	s403 = http.StatusForbidden
	s404 = http.StatusNotFound
)

func form(fields url.Values) func(*mxWorld) string {
	return func(*mxWorld) string { return fields.Encode() }
}

func jsonOf(v any) func(*mxWorld) string {
	return func(*mxWorld) string { b, _ := json.Marshal(v); return string(b) }
}

// mxRows is the matrix. Anonymous form posts get 403: no session, so no
// CSRF token. Staff S and S2 decide A's request, but S2 never her own.
func mxRows(t *testing.T) []mxRow {
	requestForm := func(w *mxWorld) string {
		return url.Values{"cluster": {w.issue.Name}, "public_key": {newKey(t).Recipient().String()},
			"justification": {"Dashboards for the research team."}}.Encode()
	}
	newCluster := func(w *mxWorld) string {
		name := w.p.mxName("new")
		return url.Values{"name": {name}, "display_name": {"New"}, "prometheus_url": {"https://prometheus." + name + ".2i2c.cloud"},
			"credential_ttl_days": {"30"}, "enabled": {"on"}}.Encode()
	}
	editCluster := func(w *mxWorld) string {
		return url.Values{"display_name": {"Renamed"}, "prometheus_url": {w.issue.PrometheusURL},
			"credential_ttl_days": {"60"}, "enabled": {"on"}}.Encode()
	}
	apiNewCluster := func(w *mxWorld) string {
		name := w.p.mxName("api")
		b, _ := json.Marshal(map[string]any{"name": name, "prometheus_url": "https://prometheus." + name + ".2i2c.cloud"})
		return string(b)
	}
	apiEditCluster := func(w *mxWorld) string {
		b, _ := json.Marshal(map[string]any{"display_name": "Renamed", "prometheus_url": w.issue.PrometheusURL, "credential_ttl_days": 60})
		return string(b)
	}
	apiNewRequest := func(w *mxWorld) string { return newRequestBody(t, w.issue.Name) }
	pub := webconfig.PublicationPath(":name")
	// The web config: only the cluster's own sync token opens it.
	pubWant := map[mxActor]int{anon: s401, sessA: s401, tokARead: s401, syncOwn: s200, syncOther: s401}

	return []mxRow{
		// Public.
		{method: "GET", route: "/healthz", want: everyone(s200)},
		{method: "GET", route: "/readyz", want: everyone(s200)},
		{method: "GET", route: "/metrics", want: everyone(s200)},
		{method: "GET", route: "/static/*", query: "style.css", want: everyone(s200)},
		{method: "GET", route: pub, obj: objCluster, want: pubWant},
		{method: "GET", route: "/", want: everyone(s200)},
		// Sign-in has a budget per address (20 at once, then one every 3 s):
		// the test's four sign-ins and these ten calls fit in it.
		{method: "GET", route: "/login", want: pg(s302, s303, s303, s303, s303)},
		// No sign-in started here: refused for everyone.
		{method: "GET", route: "/auth/callback", query: "state=x&code=y", want: everyone(s400)},
		{method: "POST", route: "/logout", want: pg(s403, s303, s303, s303, s303)},
		// Development mode only: what it would have mailed, for whoever
		// uses the development portal on their machine.
		{method: "GET", route: "/dev/mail", want: everyone(s200)},
		{method: "GET", route: "/dev/mail/:id/html", obj: objDevMail, want: everyone(s200)},

		// Signed in.
		{method: "GET", route: "/dashboard", want: pg(toLogin, s200, s200, s200, s200)},
		// Renewing with another key starts from the credential's request:
		// its owner's only.
		{method: "GET", route: "/requests/new", query: "renew={cred}", want: pg(toLogin, s200, s404, s404, s404)},
		{method: "POST", route: "/requests", body: requestForm, want: pg(s403, s303, s303, s303, s303)},
		{method: "GET", route: "/requests/:id", obj: objPending, want: pg(toLogin, s200, s404, s200, s200)},
		{method: "GET", route: "/requests/:id/cancel", obj: objPending, want: pg(toLogin, s200, s404, s403, s200)},
		{method: "POST", route: "/requests/:id/cancel", obj: objPending, want: pg(s403, s303, s404, s403, s303)},
		{method: "GET", route: "/credentials/:id", obj: objCredential, want: pg(toLogin, s200, s404, s200, s200)},
		// Staff cannot download customers' credentials.
		{method: "GET", route: "/credentials/:id/credentials.txt.age", obj: objCredential, changes: true,
			want: pg(toLogin, s200, s404, s404, s404)},
		{method: "GET", route: "/credentials/:id/revoke", obj: objCredential, want: pg(toLogin, s200, s404, s200, s200)},
		{method: "POST", route: "/credentials/:id/revoke", obj: objCredential, body: form(url.Values{"reason": {"no longer needed"}}),
			want: pg(s403, s303, s404, s303, s303)},
		// Only the owner reports a compromise; staff revoke.
		{method: "GET", route: "/credentials/:id/report-compromised", obj: objCredential, want: pg(toLogin, s200, s404, s404, s404)},
		{method: "POST", route: "/credentials/:id/report-compromised", obj: objCredential, body: form(url.Values{"details": {"laptop stolen"}}),
			want: pg(s403, s303, s404, s404, s404)},
		{method: "POST", route: "/credentials/:id/renew", obj: objCredential, want: pg(s403, s303, s404, s404, s404)},
		{method: "GET", route: "/sessions", want: pg(toLogin, s200, s200, s200, s200)},
		{method: "POST", route: "/sessions/:id/end", obj: objSession, want: pg(s403, s303, s404, s303, s303)},
		{method: "POST", route: "/sessions/end-all", want: pg(s403, s303, s303, s303, s303)},
		{method: "GET", route: "/tokens", want: pg(toLogin, s200, s200, s200, s200)},
		{method: "POST", route: "/tokens", body: form(url.Values{"name": {"dashboards"}, "scopes": {"read"}}), want: pg(s403, s200, s200, s200, s200)},
		{method: "POST", route: "/tokens/:id/revoke", obj: objToken, want: pg(s403, s303, s404, s303, s303)},

		// Staff.
		{method: "GET", route: "/staff", want: pg(toLogin, s403, s403, s303, s303)},
		{method: "GET", route: "/staff/requests", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "GET", route: "/staff/requests/:id/approve", obj: objPending, want: pg(toLogin, s403, s403, s200, s403)},
		{method: "POST", route: "/staff/requests/:id/approve", obj: objPending, body: form(url.Values{"note": {"welcome"}}),
			want: pg(s403, s403, s403, s303, s403)},
		{method: "GET", route: "/staff/requests/:id/deny", obj: objPending, want: pg(toLogin, s403, s403, s200, s403)},
		{method: "POST", route: "/staff/requests/:id/deny", obj: objPending, body: form(url.Values{"note": {"not this cluster"}}),
			want: pg(s403, s403, s403, s303, s403)},
		{method: "GET", route: "/staff/clusters", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "GET", route: "/staff/clusters/new", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "POST", route: "/staff/clusters", body: newCluster, want: pg(s403, s403, s403, s303, s303)},
		{method: "GET", route: "/staff/clusters/:id/edit", obj: objCluster, want: pg(toLogin, s403, s403, s200, s200)},
		{method: "POST", route: "/staff/clusters/:id", obj: objCluster, body: editCluster, want: pg(s403, s403, s403, s303, s303)},
		{method: "GET", route: "/staff/clusters/:id/sync-token", obj: objCluster, want: pg(toLogin, s403, s403, s200, s200)},
		{method: "POST", route: "/staff/clusters/:id/sync-token", obj: objCluster, want: pg(s403, s403, s403, s303, s303)},
		{method: "GET", route: "/staff/clusters/:id/sync-token/new", obj: objCluster, want: pg(toLogin, s403, s403, s200, s200)},
		{method: "GET", route: "/staff/revocations", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "GET", route: "/staff/people", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "GET", route: "/staff/people/:id/sessions", obj: objPerson, want: pg(toLogin, s403, s403, s200, s200)},
		{method: "POST", route: "/staff/people/:id/sessions/end", obj: objPerson, want: pg(s403, s403, s403, s303, s303)},
		{method: "GET", route: "/staff/notifications", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "POST", route: "/staff/notifications/:id/retry", obj: objMessage, want: pg(s403, s403, s403, s303, s303)},
		{method: "GET", route: "/staff/audit", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "POST", route: "/staff/audit/verify", want: pg(s403, s403, s403, s303, s303)},
		{method: "GET", route: "/staff/audit/export.csv", want: pg(toLogin, s403, s403, s200, s200)},
		{method: "GET", route: "/staff/audit/export.jsonl", want: pg(toLogin, s403, s403, s200, s200)},

		// The JSON API.
		{method: "GET", route: "/api/v1/clusters", want: api(portal.ScopeRead, s200, s200, s200, s200)},
		{method: "POST", route: "/api/v1/clusters", body: apiNewCluster, want: api(portal.ScopeAdmin, s403, s403, s201, s201)},
		{method: "GET", route: "/api/v1/clusters/:name", obj: objCluster, want: api(portal.ScopeRead, s200, s200, s200, s200)},
		{method: "PUT", route: "/api/v1/clusters/:name", obj: objCluster, body: apiEditCluster, want: api(portal.ScopeAdmin, s403, s403, s200, s200)},
		{method: "GET", route: "/api/v1/requests", want: api(portal.ScopeRead, s200, s200, s200, s200)},
		{method: "POST", route: "/api/v1/requests", body: apiNewRequest, want: api(portal.ScopeRequest, s201, s201, s201, s201)},
		{method: "GET", route: "/api/v1/requests/:id", obj: objPending, want: api(portal.ScopeRead, s200, s404, s200, s200)},
		{method: "POST", route: "/api/v1/requests/:id/approve", obj: objPending, body: jsonOf(map[string]string{"note": "welcome"}),
			want: api(portal.ScopeDecide, s403, s403, s200, s403)},
		{method: "POST", route: "/api/v1/requests/:id/deny", obj: objPending, body: jsonOf(map[string]string{"note": "not this cluster"}),
			want: api(portal.ScopeDecide, s403, s403, s200, s403)},
		{method: "POST", route: "/api/v1/requests/:id/cancel", obj: objPending, want: api(portal.ScopeRequest, s200, s404, s403, s200)},
		{method: "GET", route: "/api/v1/credentials/:id", obj: objCredential, want: api(portal.ScopeRead, s200, s404, s200, s200)},
		{method: "GET", route: "/api/v1/credentials/:id/credentials.txt.age", obj: objCredential, changes: true,
			want: api(portal.ScopeRead, s200, s404, s404, s404)},
		// Staff revoke anyone's credential signed in; through a token,
		// another person's needs the admin scope, as another person's
		// token does: request is for one's own.
		{method: "POST", route: "/api/v1/credentials/:id/revoke", obj: objCredential, body: jsonOf(map[string]string{"reason": "no longer needed"}),
			want: api(portal.ScopeRequest, s200, s404, s200, s200, tokSReq, s403)},
		{method: "POST", route: "/api/v1/credentials/:id/report-compromised", obj: objCredential, body: jsonOf(map[string]string{"details": "laptop stolen"}),
			want: api(portal.ScopeRequest, s200, s404, s404, s404)},
		{method: "POST", route: "/api/v1/credentials/:id/renew", obj: objCredential, want: api(portal.ScopeRequest, s201, s404, s404, s404)},
		{method: "GET", route: "/api/v1/revocations", want: api(portal.ScopeRead, s403, s403, s200, s200)},
		{method: "POST", route: "/api/v1/clusters/:name/sync-token", obj: objCluster, want: api(portal.ScopeAdmin, s403, s403, s200, s200)},
		{method: "GET", route: "/api/v1/audit", want: api(portal.ScopeRead, s403, s403, s200, s200)},
		{method: "GET", route: "/api/v1/audit/export", query: "format=csv", want: api(portal.ScopeRead, s403, s403, s200, s200)},
		{method: "GET", route: "/api/v1/tokens", obj: objPerson, query: "user={user}", want: api(portal.ScopeRead, s200, s404, s200, s200)},
		{method: "POST", route: "/api/v1/tokens", body: jsonOf(map[string]any{"name": "dashboards", "scopes": []string{"read"}}),
			want: api(sessionOnly, s201, s201, s201, s201)},
		// A staff token revokes another person's tokens only with admin.
		{method: "DELETE", route: "/api/v1/tokens", obj: objPerson, query: "user={user}", want: api(portal.ScopeRequest, s200, s404, s200, s200, tokSReq, s403)},
		{method: "DELETE", route: "/api/v1/tokens/:id", obj: objToken, want: api(portal.ScopeRequest, s200, s404, s200, s200, tokSReq, s403)},
	}
}

// actors are the callers that try r.
func (r mxRow) actors() []mxActor {
	switch {
	case r.route == webconfig.PublicationPath(":name"):
		return publicationActors
	case strings.HasPrefix(r.route, "/api/"):
		return apiActors
	}
	return pageActors
}

// mxDevOnly are the routes only a development portal has that the matrix
// does not try, and why.
var mxDevOnly = map[string]string{
	"/oidc/*": "the development identity provider of `portal dev` (its sign-in page and endpoints); " +
		"it is the sign-in itself, open to everyone, and holds none of the portal's objects",
}

// mxPeople is who the matrix's callers are.
type mxPeople struct {
	alice, bob, sam, sara *portal.User
}

// mxWorld is a set of objects the calls act on, and the callers: the reads
// share one; each row of calls that may change something starts with a
// fresh one, and takes another after any call that changed something, so
// that no cell depends on another.
type mxWorld struct {
	p       *mxPortal
	issue   *portal.Cluster // A's credential's cluster
	pend    *portal.Cluster // A's and S2's pending requests' cluster
	pending int64           // A's pending request
	own     int64           // S2's pending request
	cred    int64           // A's credential
	session int64           // another session of A's
	token   int64           // a token of A's
	message int64           // a failed message
	agents  map[*portal.Cluster]string
	callers map[mxActor]*mxCaller
}

// mxPortal is the one portal every cell runs on.
type mxPortal struct {
	*testPortal
	t      *testing.T
	people mxPeople
	wf     *workflow.Service
	client *http.Client // follows no redirect
	n      int
}

// mxName is a new cluster name.
func (p *mxPortal) mxName(prefix string) string {
	p.n++
	return fmt.Sprintf("mx-%s-%d", prefix, p.n)
}

func (p *mxPortal) user(email string) *portal.User {
	p.t.Helper()
	u, err := p.Store.UserByID(context.Background(), int64(p.count(`SELECT id FROM users WHERE email = $1`, email)))
	if err != nil {
		p.t.Fatal(err)
	}
	return u
}

func (p *mxPortal) actor(u *portal.User) workflow.Actor {
	return workflow.Actor{User: u, IP: "127.0.0.1"}
}

// world makes a fresh set of objects, through the workflow as people
// would make them but without the pages' round trips: the two clusters,
// and of the objects the matrix names those in needs.
func (p *mxPortal) world(needs ...mxObj) *mxWorld {
	p.t.Helper()
	ctx := context.Background()
	w := &mxWorld{p: p, agents: map[*portal.Cluster]string{}, callers: map[mxActor]*mxCaller{}}
	// The worlds before are done with: their tokens would count against
	// the most one person may hold.
	p.exec(`UPDATE api_tokens SET revoked_at = now(), revoked_by = user_id WHERE revoked_at IS NULL`)
	w.issue, w.pend = p.addCluster(p.mxName("issue")), p.addCluster(p.mxName("pend"))
	request := func(u *portal.User, c *portal.Cluster) int64 {
		r, err := p.wf.CreateRequest(ctx, p.actor(u), workflow.RequestInput{Cluster: c.Name,
			PublicKey: newKey(p.t).Recipient().String(), Justification: "Dashboards for the research team."})
		if err != nil {
			p.t.Fatal(err)
		}
		return r.ID
	}
	for _, need := range needs {
		switch need {
		case objPending:
			w.pending, w.own = request(p.people.alice, w.pend), request(p.people.sara, w.pend)
		case objCredential:
			ap, err := p.wf.Approve(ctx, p.actor(p.people.sam), request(p.people.alice, w.issue), workflow.ApproveInput{})
			if err != nil {
				p.t.Fatal(err)
			}
			w.cred = ap.Credential.ID
		case objSession:
			_, w.session = p.session(p.people.alice)
		case objToken:
			_, w.token = p.token(p.people.alice, portal.ScopeRead)
		case objPerson:
			_, w.session = p.session(p.people.alice)
			_, w.token = p.token(p.people.alice, portal.ScopeRead)
		case objMessage:
			if err := p.Store.Pool().QueryRow(ctx, `
				INSERT INTO messages (event, audience, channel, recipient, subject, body_text, status, attempts, last_error)
				VALUES ('request.created', 'staff', 'email', 'staff@2i2c.org', 'New request', 'A new request.', 'failed', 5, 'refused')
				RETURNING id`).Scan(&w.message); err != nil {
				p.t.Fatal(err)
			}
		}
	}
	return w
}

// session signs u in on a new session, as the callback does, and returns
// the session's cookie value and its ID.
func (p *mxPortal) session(u *portal.User) (*mxCaller, int64) {
	p.t.Helper()
	ctx, err := p.Server.sessions.Load(context.Background(), "")
	if err != nil {
		p.t.Fatal(err)
	}
	csrf := newCSRFToken()
	p.Server.sessions.Put(ctx, sessCSRF, csrf)
	p.Server.sessions.Put(ctx, sessUserID, u.ID)
	token, _, err := p.Server.sessions.Commit(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	key := store.SessionKey(token)
	if err := p.Store.CreateUserSession(context.Background(), key, u.ID, "127.0.0.1", "matrix"); err != nil {
		p.t.Fatal(err)
	}
	return &mxCaller{cookie: token, csrf: csrf}, int64(p.count(`SELECT id FROM user_sessions WHERE token_hash = $1`, key))
}

// token makes a personal access token of u's with scopes, whatever u may
// hold now: A's decide and admin tokens stand for those of someone who has
// left the staff.
func (p *mxPortal) token(u *portal.User, scopes ...portal.Scope) (*mxCaller, int64) {
	p.t.Helper()
	var b [20]byte
	_, _ = rand.Read(b[:])
	secret := portal.TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	tok := &portal.Token{UserID: u.ID, Name: "matrix", Scopes: scopes, ExpiresAt: time.Now().Add(24 * time.Hour).Truncate(time.Microsecond)}
	if err := p.Store.CreateToken(context.Background(), tok, store.TokenHash(secret)); err != nil {
		p.t.Fatal(err)
	}
	return &mxCaller{bearer: secret}, tok.ID
}

// agentToken is the sync token of cluster c's agent.
func (w *mxWorld) agentToken(c *portal.Cluster) string {
	w.p.t.Helper()
	if tok, ok := w.agents[c]; ok {
		return tok
	}
	tok, err := w.p.wf.RotateSyncToken(context.Background(), w.p.actor(w.p.people.sam), c.Name)
	if err != nil {
		w.p.t.Fatal(err)
	}
	w.agents[c] = tok
	return tok
}

// mxCaller is how a caller authenticates: a session cookie and its CSRF
// token, or a bearer token, or nothing.
type mxCaller struct {
	cookie, csrf, bearer string
}

// caller is actor's caller in w, made on first use.
func (w *mxWorld) caller(a mxActor) *mxCaller {
	if c, ok := w.callers[a]; ok {
		return c
	}
	p, people := w.p, w.p.people
	var c *mxCaller
	switch a {
	case anon:
		c = &mxCaller{}
	case sessA:
		c, _ = p.session(people.alice)
	case sessB:
		c, _ = p.session(people.bob)
	case sessS:
		c, _ = p.session(people.sam)
	case sessS2:
		c, _ = p.session(people.sara)
	case syncOwn:
		c = &mxCaller{bearer: w.agentToken(w.issue)}
	case syncOther:
		c = &mxCaller{bearer: w.agentToken(w.pend)}
	default:
		o := tokenOf[a]
		owner := map[mxActor]*portal.User{sessA: people.alice, sessB: people.bob, sessS: people.sam}[o.owner]
		c, _ = p.token(owner, o.scopes...)
	}
	w.callers[a] = c
	return c
}

// path is the row's path as actor calls it in w.
func (w *mxWorld) path(r mxRow, a mxActor) string {
	var v string
	switch r.obj {
	case objPending:
		v = strconv.FormatInt(w.pending, 10)
		if a == sessS2 {
			v = strconv.FormatInt(w.own, 10)
		}
	case objCredential:
		v = strconv.FormatInt(w.cred, 10)
	case objSession:
		v = strconv.FormatInt(w.session, 10)
	case objToken:
		v = strconv.FormatInt(w.token, 10)
	case objPerson:
		v = strconv.FormatInt(w.p.people.alice.ID, 10)
	case objCluster:
		v = strconv.FormatInt(w.issue.ID, 10)
		if strings.Contains(r.route, ":name") {
			v = w.issue.Name
		}
	case objMessage:
		v = strconv.FormatInt(w.message, 10)
	case objDevMail:
		v = "1"
	}
	path := strings.NewReplacer(":id", v, ":name", v, "*", "").Replace(r.route)
	if r.query != "" {
		q := strings.NewReplacer("{user}", strconv.FormatInt(w.p.people.alice.ID, 10), "{cred}", strconv.FormatInt(w.cred, 10)).Replace(r.query)
		if strings.HasSuffix(r.route, "*") {
			path += q
		} else {
			path += "?" + q
		}
	}
	return path
}

// call sends the row's request as actor in w and returns the status and
// where a redirect goes.
func (w *mxWorld) call(r mxRow, a mxActor) (int, string) {
	p := w.p
	p.t.Helper()
	c := w.caller(a)
	isAPI := strings.HasPrefix(r.route, "/api/")
	body := ""
	if r.body != nil {
		body = r.body(w)
	}
	if !isAPI && r.method == http.MethodPost && c.csrf != "" {
		// The form as the page renders it: with the session's token.
		if body != "" {
			body += "&"
		}
		body += "csrf=" + url.QueryEscape(c.csrf)
	}
	if isAPI && body == "" && r.method != http.MethodGet && r.method != http.MethodDelete {
		body = "{}"
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(r.method, p.URL+w.path(r, a), rd)
	if err != nil {
		p.t.Fatal(err)
	}
	switch {
	case body != "" && isAPI:
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	case body != "":
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationForm)
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie(p.Server.cfg.BaseURL), Value: c.cookie})
	}
	if c.bearer != "" {
		req.Header.Set(echo.HeaderAuthorization, "Bearer "+c.bearer)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s as %s: %v", r.method, req.URL, a, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(echo.HeaderLocation)
}

// snapshot is what a refused call must leave as it was: w's objects, and
// how many of each kind there are.
func (w *mxWorld) snapshot() string {
	w.p.t.Helper()
	var s string
	err := w.p.Store.Pool().QueryRow(context.Background(), `
		SELECT concat_ws(' | ',
		  (SELECT json_agg(r ORDER BY id)::text FROM requests r WHERE cluster_id IN ($1, $2)),
		  (SELECT json_agg(c ORDER BY id)::text FROM credentials c WHERE cluster_id IN ($1, $2)),
		  (SELECT json_agg(a ORDER BY request_id, approver_id)::text FROM request_approvals a
		     WHERE request_id IN (SELECT id FROM requests WHERE cluster_id IN ($1, $2))),
		  (SELECT json_agg(c ORDER BY id)::text FROM clusters c WHERE id IN ($1, $2)),
		  (SELECT json_agg(m ORDER BY id)::text FROM messages m WHERE id = $3),
		  (SELECT json_agg(json_build_array(id, revoked_at) ORDER BY id)::text FROM api_tokens),
		  (SELECT json_agg(id ORDER BY id)::text FROM user_sessions),
		  (SELECT count(*) FROM requests), (SELECT count(*) FROM credentials), (SELECT count(*) FROM clusters),
		  (SELECT count(*) FROM messages), (SELECT count(*) FROM audit_verifications))`,
		w.issue.ID, w.pend.ID, w.message).Scan(&s)
	if err != nil {
		w.p.t.Fatal(err)
	}
	return s
}

// mxCell is one call's outcome.
type mxCell struct {
	method, route string
	actor         mxActor
	got, want     int
	location      string
	problem       string
}

func statusText(st int) string {
	if st == toLogin {
		return "303→/login"
	}
	return strconv.Itoa(st)
}

// refused reports whether want is a refusal.
func refused(want int) bool { return want == toLogin || want >= 400 }

// TestAuthorizationMatrix tries every route as every kind of caller: the
// exact status of each, and that a refusal changed nothing while a success
// of a state-changing call changed something. On failure it prints the
// cells that differ as a table.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	start := time.Now()
	mail := outbox.NewCapture(5)
	_ = mail.Send(context.Background(), &portal.Message{ID: 1, Subject: "Welcome", Text: "Hello.", HTML: "<p>Hello.</p>", CreatedAt: time.Now()})
	tp := newPortal(t, portalOptions{devMail: mail})
	// The people sign in as people do; their objects are made afresh for
	// every call that may change something.
	for _, email := range []string{"alice@example.org", "bob@example.org", "sam@2i2c.org", "sara@2i2c.org"} {
		tp.signedIn(email)
	}
	p := &mxPortal{testPortal: tp, t: t, wf: tp.Server.wf,
		client: &http.Client{Transport: tp.ts.Client().Transport, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	p.people = mxPeople{alice: p.user("alice@example.org"), bob: p.user("bob@example.org"),
		sam: p.user("sam@2i2c.org"), sara: p.user("sara@2i2c.org")}

	rows := mxRows(t)
	checkRoutes(t, tp.Server, rows)

	// Reads share one world and change nothing; B's objects are in it too,
	// so that A and B each have their own.
	shared := p.world(objPending, objCredential, objSession, objToken, objMessage)
	for _, c := range []*portal.Cluster{shared.pend, shared.issue} {
		r, err := p.wf.CreateRequest(context.Background(), p.actor(p.people.bob), workflow.RequestInput{Cluster: c.Name,
			PublicKey: newKey(t).Recipient().String(), Justification: "Bob's dashboards for his team."})
		if err != nil {
			t.Fatal(err)
		}
		if c == shared.issue {
			if _, err := p.wf.Approve(context.Background(), p.actor(p.people.sam), r.ID, workflow.ApproveInput{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var cells []mxCell
	calls := 0
	// try makes one call and reports whether it changed anything.
	try := func(r mxRow, a mxActor, w *mxWorld, changes bool) bool {
		want, ok := r.want[a]
		if !ok {
			t.Fatalf("%s %s: no want for %s", r.method, r.route, a)
		}
		w.caller(a)
		before := w.snapshot()
		got, location := w.call(r, a)
		changed := w.snapshot() != before
		calls++
		cell := mxCell{method: r.method, route: r.route, actor: a, got: got, want: want, location: location}
		switch {
		case want == toLogin && (got != s303 || !strings.HasPrefix(location, "/login?next=")):
			cell.problem = "not sent to sign in"
		case want != toLogin && got != want:
			cell.problem = "status"
		case refused(want) && changed:
			cell.problem = "refused, but changed something"
		case changes && !refused(want) && !changed:
			cell.problem = "succeeded, but changed nothing"
		}
		if cell.problem != "" {
			cells = append(cells, cell)
		}
		return changed
	}
	// Reads first, on the shared world, while its sessions and tokens are
	// open. Then the calls that may change something, each row on objects
	// and callers of its own (some end every session or token of a
	// person): a refusal shown to have changed nothing leaves them for the
	// next caller, anything else gets the next caller fresh ones.
	for _, changing := range []bool{false, true} {
		for _, r := range rows {
			changes := r.method != http.MethodGet || r.changes
			if changes != changing {
				continue
			}
			var w *mxWorld
			for _, a := range r.actors() {
				switch {
				case !changes:
					w = shared
				case w == nil:
					w = p.world(r.obj)
				}
				if try(r, a, w, changes) {
					w = nil
				}
			}
		}
	}
	if len(cells) > 0 {
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUTE\tCALLER\tGOT\tWANT\tPROBLEM")
		for _, c := range cells {
			got := strconv.Itoa(c.got)
			if c.location != "" {
				got += " → " + c.location
			}
			fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\n", c.method, c.route, c.actor, got, statusText(c.want), c.problem)
		}
		tw.Flush()
		t.Errorf("%d of %d calls differ from the authorization matrix:\n%s", len(cells), calls, b.String())
	}
	if testing.Verbose() {
		t.Logf("%d calls in %s", calls, time.Since(start).Round(time.Millisecond))
	}
}

// checkRoutes fails for every route the router holds and the matrix does
// not, and for every row of the matrix the router does not hold.
func checkRoutes(t *testing.T, s *Server, rows []mxRow) {
	t.Helper()
	inMatrix := map[string]bool{}
	for _, r := range rows {
		inMatrix[r.method+" "+r.route] = true
	}
	held := map[string]bool{}
	var missing []string
	for _, rt := range s.echo.Routes() {
		if rt.Method == echo.RouteNotFound {
			continue
		}
		if _, ok := mxDevOnly[rt.Path]; ok {
			continue
		}
		key := rt.Method + " " + rt.Path
		held[key] = true
		if !inMatrix[key] {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	for _, key := range missing {
		t.Errorf("route %s has no row in the authorization matrix: add one to mxRows in authorization_matrix_test.go "+
			"with what each caller gets", key)
	}
	for key := range inMatrix {
		if !held[key] {
			t.Errorf("the authorization matrix has a row for %s, which the router does not hold: remove it", key)
		}
	}
}
