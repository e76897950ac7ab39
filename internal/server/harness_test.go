package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/devidp"
	"github.com/2i2c-org/credential-portal/internal/logtest"
	"github.com/2i2c-org/credential-portal/internal/notify"
	"github.com/2i2c-org/credential-portal/internal/oidc"
	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// issued has alice's request approved by sam.
func (w *auditWorld) issued() {
	w.t.Helper()
	w.request()
	w.sam.approve(w.requestID, "welcome")
	w.credentialID = int64(w.p.count(`SELECT id FROM credentials WHERE request_id = $1`, w.requestID))
}

// testCluster is the cluster name as test portals hold it: enabled, with
// credentials for 90 days.
func testCluster(name string) *portal.Cluster {
	return &portal.Cluster{Name: name, DisplayName: "Cluster " + name, PrometheusURL: "https://prometheus." + name + ".2i2c.cloud",
		CredentialTTLDays: 90, Enabled: true, Note: "Covers every hub on " + name + "."}
}

// addCluster stores a cluster for a test portal, which sees it at once, as
// it sees its own changes (its notification may come a little later).
func (p *testPortal) addCluster(name string) *portal.Cluster {
	p.t.Helper()
	c := testCluster(name)
	if err := p.Store.CreateCluster(context.Background(), c); err != nil {
		p.t.Fatal(err)
	}
	p.Server.openClusters.drop()
	return c
}

// count runs a counting query on the portal's database.
func (p *testPortal) count(query string, args ...any) int {
	p.t.Helper()
	var n int
	if err := p.Store.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// exec runs a statement on the portal's database.
func (p *testPortal) exec(query string, args ...any) {
	p.t.Helper()
	if _, err := p.Store.Pool().Exec(context.Background(), query, args...); err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
}

// wantAudited checks that the portal holds n audit events of action.
func (p *testPortal) wantAudited(action portal.Action, n int) {
	p.t.Helper()
	if got := p.count(`SELECT count(*) FROM audit_events WHERE action = $1`, string(action)); got != n {
		p.t.Errorf("%d %s audit events, want %d", got, action, n)
	}
}

// newKey is a new age key pair, as a customer makes one with age-keygen.
func newKey(t testing.TB) *age.X25519Identity {
	t.Helper()
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// requestAccess fills in the request form as a person would and returns the
// new request's ID.
func (b *browser) requestAccess(cluster, key, justification string) int64 {
	b.t.Helper()
	r := b.submit("/requests/new", "/requests", url.Values{"cluster": {cluster}, "public_key": {key}, "justification": {justification}})
	m := requestPath.FindStringSubmatch(r.Request.URL.Path)
	if r.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("request form: %d at %s\n%s", r.StatusCode, r.Request.URL, r.Body)
	}
	var id int64
	fmt.Sscan(m[1], &id)
	return id
}

// approve approves request id from the staff queue as a person would.
func (b *browser) approve(id int64, note string) response {
	b.t.Helper()
	q := b.get("/staff/requests")
	if !strings.Contains(q.Body, fmt.Sprintf(`id="request-%d"`, id)) {
		b.t.Fatalf("request %d is not in the staff queue:\n%s", id, q.Body)
	}
	return b.post(fmt.Sprintf("/staff/requests/%d/approve", id), url.Values{"csrf": {csrfToken(b.t, q.Body)}, "note": {note}})
}

// download fetches credentials.txt.age of the request's credential from the
// request page's download link.
func (b *browser) download(requestID int64) ([]byte, response) {
	b.t.Helper()
	page := b.get(fmt.Sprintf("/requests/%d", requestID))
	m := regexp.MustCompile(`href="(/credentials/\d+/credentials\.txt\.age)"`).FindStringSubmatch(page.Body)
	if m == nil {
		b.t.Fatalf("no download link on request %d's page:\n%s", requestID, page.Body)
	}
	if !decryptCommand.MatchString(page.Body) {
		b.t.Errorf("the request page does not show the decrypt command")
	}
	r := b.get(m[1])
	if r.StatusCode != http.StatusOK {
		b.t.Fatalf("download: %d\n%s", r.StatusCode, r.Body)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="credentials.txt.age"` {
		b.t.Errorf("Content-Disposition %q", cd)
	}
	return []byte(r.Body), r
}

func decryptWith(t testing.TB, ciphertext []byte, id age.Identity) string {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(ciphertext), id)
	if err != nil {
		t.Fatalf("decrypt credentials.txt.age: %v", err)
	}
	b, _ := io.ReadAll(r)
	return string(b)
}

// snapshot is the state a refused action must leave as it was.
func (p *testPortal) snapshot() string {
	p.t.Helper()
	var s string
	err := p.Store.Pool().QueryRow(context.Background(), `
		SELECT (SELECT coalesce(json_agg(r ORDER BY id), '[]') FROM requests r)::text ||
		       (SELECT coalesce(json_agg(c ORDER BY id), '[]') FROM credentials c)::text`).Scan(&s)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// apiPost sends a JSON body as a script would, with the browser's session.
func (b *browser) apiPost(path, body string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.abs(path), strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return b.do(req)
}

// testStaffAddress is where test portals mail staff.
const testStaffAddress = "staff@2i2c.org"

// testPolicy is the access policy of test portals: 2i2c.org is staff.
var testPolicy = portal.AccessPolicy{StaffGroups: []string{"2i2c-staff"}, StaffEmailDomains: []string{"2i2c.org"}}

// testPortal is a whole portal on a real PostgreSQL, served over real HTTP, with
// its log lines captured.
type testPortal struct {
	t      testing.TB
	URL    string
	Store  *store.Store
	Server *Server
	OIDC   *oidc.Client
	logs   *logtest.Buffer
	ts     *httptest.Server
}

// stop stops serving, as when the portal is down.
func (p *testPortal) stop() { p.ts.Close() }

type portalOptions struct {
	// issuer, when set, is an external OIDC provider; otherwise the
	// development provider is mounted on the portal itself.
	issuer, clientID, clientSecret string
	access                         *portal.AccessPolicy
	store                          *store.Store // share a database with another portal
	noDiscover                     bool
	sessions                       *SessionConfig
	// channels are the notification channels the workflow believes
	// configured; none by default.
	channels workflow.Channels
	// devMail, when set, makes the portal a development one showing what
	// it holds at /dev/mail.
	devMail    interface{ Messages() []*portal.Message }
	collectors []prometheus.Collector
	// senders, when set, deliver the portal's messages: an outbox worker
	// runs with them, retrying within milliseconds, and the channels are
	// theirs.
	senders map[portal.Channel]outbox.Sender
	// tls serves the portal over https (a test certificate its browsers
	// trust); it needs an external issuer, as the development provider
	// serves plain http only.
	tls bool
	// tracer, when set, watches every statement on the portal's pool.
	tracer pgx.QueryTracer
}

func newPortal(t testing.TB, opts portalOptions) *testPortal {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	scheme := "http"
	if opts.tls {
		scheme = "https"
	}
	base, _ := url.Parse(scheme + "://" + ts.Listener.Addr().String())
	logs := &logtest.Buffer{}
	log := applog.New(logs, slog.LevelDebug)

	st := opts.store
	if st == nil {
		st = store.New(pgtest.NewTraced(t, opts.tracer))
	}
	cfg := Config{
		BaseURL: base, Version: "test", Access: testPolicy,
		Sessions: SessionConfig{IdleTimeout: time.Hour, Lifetime: 2 * time.Hour},
	}
	if opts.access != nil {
		cfg.Access = *opts.access
	}
	if opts.sessions != nil {
		cfg.Sessions = *opts.sessions
	}
	if opts.devMail != nil {
		cfg.Dev, cfg.DevMail = true, opts.devMail
	}
	cfg.Collectors = opts.collectors
	oc := oidc.Config{Issuer: opts.issuer, ClientID: opts.clientID, ClientSecret: opts.clientSecret,
		RedirectURL: RedirectURL(base), Scopes: []string{"openid", "email", "profile", "groups"}, GroupsClaim: "groups"}
	if opts.issuer == "" {
		idp, err := devidp.New(base.String(), "portal-test", "test-secret")
		if err != nil {
			t.Fatal(err)
		}
		cfg.DevIdentityProvider = idp.Handler()
		oc.Issuer, oc.ClientID, oc.ClientSecret = idp.Issuer(), "portal-test", "test-secret"
	}
	client := oidc.New(oc, log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hub := notify.New(st.Pool(), log)
	go hub.Run(ctx)
	if opts.senders != nil {
		_, opts.channels.Email = opts.senders[portal.ChannelEmail]
		_, opts.channels.Webhook = opts.senders[portal.ChannelWebhook]
		worker := outbox.NewWorker(st, opts.senders, outbox.Options{
			FirstRetry: 20 * time.Millisecond, MaxRetry: 100 * time.Millisecond, Poll: 100 * time.Millisecond,
			Wake: hub.MessagesQueued(), Log: log,
		})
		stopped := make(chan struct{})
		go func() { defer close(stopped); worker.Run(ctx) }()
		// Before the database is dropped: cleanups run last registered first.
		t.Cleanup(func() { cancel(); <-stopped })
	}
	srv, err := New(cfg, st, workflow.New(st, workflow.Options{Log: log,
		Notify: workflow.NotifyOptions{BaseURL: base, Channels: opts.channels, StaffEmails: []string{testStaffAddress}}}), client, hub, log)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	if opts.tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	if !opts.noDiscover {
		if err := client.Discover(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return &testPortal{t: t, URL: ts.URL, Store: st, Server: srv, OIDC: client, logs: logs, ts: ts}
}

// browser is a person's browser: a cookie jar, redirects followed.
type browser struct {
	t      testing.TB
	p      *testPortal
	client *http.Client
}

func (p *testPortal) browser() *browser {
	jar, _ := cookiejar.New(nil)
	// The test server's client trusts its certificate, when it has one.
	return &browser{t: p.t, p: p, client: &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: p.ts.Client().Transport}}
}

// noFollow makes b stop at the first redirect.
func (b *browser) noFollow() *browser {
	c := *b.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: b.t, p: b.p, client: &c}
}

type response struct {
	*http.Response
	Body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp, string(body)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.abs(path), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form as a browser would, minus the Sec-Fetch-Site and Origin
// headers, as a script or a browser older than those headers sends it: the
// session's CSRF token is then the only thing that lets a form through.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.abs(path), strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.p.URL + path
}

// submit opens page and sends its form to action with fields, as a person
// filling it in would: with the CSRF token the page's form carries.
func (b *browser) submit(page, action string, fields url.Values) response {
	b.t.Helper()
	form := url.Values{"csrf": {csrfToken(b.t, b.get(page).Body)}}
	maps.Copy(form, fields)
	return b.post(action, form)
}

// cookie returns the value of the browser's cookie called name, or "".
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.p.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// decryptCommand is the decrypt command a page shows, for the private key
// file of any key type.
var decryptCommand = regexp.MustCompile(`age --decrypt -i (key\.txt|~/\.ssh/id_ed25519|~/\.ssh/id_rsa) -o credentials\.txt credentials\.txt\.age`)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfToken is the CSRF token of the forms on page.
func csrfToken(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

// signIn signs b in through the development provider as email and returns
// the page it lands on.
func (b *browser) signIn(email string) response {
	b.t.Helper()
	r := b.get("/login?login_hint=" + url.QueryEscape(email))
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "Sign out") {
		b.t.Fatalf("sign-in as %s ended at %s with %d:\n%s", email, r.Request.URL, r.StatusCode, r.Body)
	}
	return r
}

// signedIn is a new browser signed in as email.
func (p *testPortal) signedIn(email string) *browser {
	p.t.Helper()
	b := p.browser()
	b.signIn(email)
	return b
}

// newScene is a portal with the cluster awi-ciroh and the three demo people
// signed in, each in a browser of their own: customers alice and bob, and
// sam of the staff.
func newScene(t *testing.T) (p *testPortal, alice, bob, sam *browser) {
	t.Helper()
	p = newPortal(t, portalOptions{})
	p.addCluster("awi-ciroh")
	return p, p.signedIn("alice@example.org"), p.signedIn("bob@example.org"), p.signedIn("sam@2i2c.org")
}

// issued is a credential as its owner holds it.
type issued struct {
	ID                 int64
	Username, Password string
}

// issue runs the whole flow for a new credential on cluster: the customer
// requests, staff approve, the customer downloads and decrypts.
func (p *testPortal) issue(customer, staff *browser, cluster string) issued {
	p.t.Helper()
	key := newKey(p.t)
	reqID := customer.requestAccess(cluster, key.Recipient().String(), "Dashboards for the research team.")
	staff.approve(reqID, "")
	ciphertext, _ := customer.download(reqID)
	file := decryptWith(p.t, ciphertext, key)
	field := func(label string) string {
		for line := range strings.Lines(file) {
			if v, ok := strings.CutPrefix(line, label+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		p.t.Fatalf("no %s in credentials.txt", label)
		return ""
	}
	return issued{ID: int64(p.count(`SELECT id FROM credentials WHERE request_id = $1`, reqID)),
		Username: field("Username"), Password: field("Password")}
}

// bearerStatus sends method path to the portal with secret as its bearer
// token and returns the answer's status.
func (p *testPortal) bearerStatus(method, path, secret string) int {
	p.t.Helper()
	req, err := http.NewRequest(method, p.URL+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
