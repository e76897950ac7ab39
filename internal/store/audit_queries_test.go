package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// appendEvents appends n events by actor and returns them.
func appendEvents(t *testing.T, s *Store, n int, actor string) []*portal.AuditEvent {
	t.Helper()
	var out []*portal.AuditEvent
	for i := range n {
		e := &portal.AuditEvent{Actor: actor, Action: portal.ActionRequestCreated, SubjectType: portal.SubjectRequest,
			Details: map[string]any{"n": i, "big": int64(1) << 60, "note": "<&> ünïcode"}}
		if err := s.AppendAudit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// tamper runs sql with the append-only trigger switched off, as a superuser
// could.
func tamper(t *testing.T, s *Store, sql string, args ...any) {
	t.Helper()
	err := s.InTx(context.Background(), func(tx *Store) error {
		if _, err := tx.db.Exec(context.Background(), `ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete`); err != nil {
			return err
		}
		if _, err := tx.db.Exec(context.Background(), sql, args...); err != nil {
			return err
		}
		_, err := tx.db.Exec(context.Background(), `ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete`)
		return err
	})
	if err != nil {
		t.Fatalf("tampering: %v", err)
	}
}

func TestVerifyAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// damage changes the chain of five events; nil leaves it intact.
		damage     func(t *testing.T, s *Store, ev []*portal.AuditEvent)
		since      int // index of the event to start after; -1 for the start
		wantBroken int // index of the event reported; -1 for none
		wantEvents int64
		problem    string
	}{
		{name: "intact chain", since: -1, wantBroken: -1, wantEvents: 5},
		{name: "intact chain from an event", since: 2, wantBroken: -1, wantEvents: 2},
		{name: "intact chain from its last event", since: 4, wantBroken: -1, wantEvents: 0},
		{name: "details rewritten", since: -1, wantBroken: 2, wantEvents: 3, problem: "hash mismatch",
			damage: func(t *testing.T, s *Store, ev []*portal.AuditEvent) {
				tamper(t, s, `UPDATE audit_events SET details = '{"n": 42}' WHERE id = $1`, ev[2].ID)
			}},
		{name: "actor rewritten", since: -1, wantBroken: 1, wantEvents: 2, problem: "hash mismatch",
			damage: func(t *testing.T, s *Store, ev []*portal.AuditEvent) {
				tamper(t, s, `UPDATE audit_events SET actor = 'someone-else@example.org' WHERE id = $1`, ev[1].ID)
			}},
		{name: "rewritten with its hash recomputed", since: -1, wantBroken: 3, wantEvents: 4, problem: "prev_hash does not link",
			damage: func(t *testing.T, s *Store, ev []*portal.AuditEvent) {
				forged := *ev[2]
				forged.Details = map[string]any{"n": 42}
				hash, err := forged.ChainHash(forged.PrevHash)
				if err != nil {
					t.Fatal(err)
				}
				tamper(t, s, `UPDATE audit_events SET details = '{"n": 42}', hash = $2 WHERE id = $1`, ev[2].ID, hash)
			}},
		{name: "middle event deleted", since: -1, wantBroken: 3, wantEvents: 3, problem: "prev_hash does not link",
			damage: func(t *testing.T, s *Store, ev []*portal.AuditEvent) {
				tamper(t, s, `DELETE FROM audit_events WHERE id = $1`, ev[2].ID)
			}},
		{name: "first event deleted", since: -1, wantBroken: 1, wantEvents: 1, problem: "the genesis hash",
			damage: func(t *testing.T, s *Store, ev []*portal.AuditEvent) {
				tamper(t, s, `DELETE FROM audit_events WHERE id = $1`, ev[0].ID)
			}},
		{name: "a break before the starting event is not seen", since: 2, wantBroken: -1, wantEvents: 2,
			damage: func(t *testing.T, s *Store, ev []*portal.AuditEvent) {
				tamper(t, s, `UPDATE audit_events SET details = '{"n": 42}' WHERE id = $1`, ev[1].ID)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			ev := appendEvents(t, s, 5, "alice@example.org")
			if tt.damage != nil {
				tt.damage(t, s, ev)
			}
			var since int64
			if tt.since >= 0 {
				since = ev[tt.since].ID
			}
			v, err := s.VerifyAudit(ctx, since, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v.Events != tt.wantEvents || v.SinceID != since {
				t.Errorf("checked %d events from %d, want %d from %d", v.Events, v.SinceID, tt.wantEvents, since)
			}
			if tt.wantBroken < 0 {
				if !v.OK() {
					t.Fatalf("intact chain reported broken: %+v", v.Broken)
				}
				last := ev[len(ev)-1]
				if v.HeadID != last.ID || !bytes.Equal(v.HeadHash, last.Hash) {
					t.Errorf("head %d %x, want %d %x", v.HeadID, v.HeadHash, last.ID, last.Hash)
				}
				return
			}
			if v.OK() {
				t.Fatalf("damage not found: %+v", v)
			}
			want := ev[tt.wantBroken]
			if v.Broken.ID != want.ID || !v.Broken.At.Equal(want.At) || !strings.Contains(v.Broken.Problem, tt.problem) {
				t.Errorf("broken at %d (%s): %q; want %d (%s) and %q", v.Broken.ID, v.Broken.At, v.Broken.Problem,
					want.ID, want.At, tt.problem)
			}
			// The head is the last event that checked out before the break.
			if v.HeadID >= v.Broken.ID {
				t.Errorf("head %d is not before the break %d", v.HeadID, v.Broken.ID)
			}
		})
	}
}

func TestVerifyAuditEmptyChainAndUnknownStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	v, err := s.VerifyAudit(ctx, 0, nil)
	if err != nil || !v.OK() || v.Events != 0 || v.HeadID != 0 {
		t.Errorf("empty chain: %+v, %v; want an intact chain of nothing", v, err)
	}
	if _, err := s.VerifyAudit(ctx, 999, nil); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("verify from a missing event: %v, want ErrNotFound", err)
	}
}

func TestVerifyAuditOneAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	appendEvents(t, s, 2, "a@example.org")
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.db.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, verifyLock); err != nil {
			return err
		}
		_, err := s.VerifyAudit(ctx, 0, nil)
		return err
	})
	var p *portal.Error
	if !errors.As(err, &p) || !errors.Is(err, portal.ErrConflict) {
		t.Errorf("a second walk while one runs: %v, want a conflict", err)
	}
}

func TestAuditVerificationRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.LastAuditVerification(ctx); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("before any walk: %v, want ErrNotFound", err)
	}
	ev := appendEvents(t, s, 3, "a@example.org")
	v, err := s.VerifyAudit(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.VerifiedBy = "portal audit verify"
	if err := s.RecordAuditVerification(ctx, v); err != nil {
		t.Fatal(err)
	}
	tamper(t, s, `UPDATE audit_events SET ip = '10.0.0.1' WHERE id = $1`, ev[1].ID)
	broken, err := s.VerifyAudit(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	broken.VerifiedBy = "sam@2i2c.org"
	if err := s.RecordAuditVerification(ctx, broken); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*portal.AuditVerification{v, broken} {
		got, err := s.LastAuditVerification(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want == v {
			// The latest is the broken one; read the first back by hand.
			got, err = func() (*portal.AuditVerification, error) {
				var g portal.AuditVerification
				return &g, s.db.QueryRow(ctx, `SELECT id, events, head_id, head_hash, took, verified_by FROM audit_verifications WHERE id = $1`, v.ID).
					Scan(&g.ID, &g.Events, &g.HeadID, &g.HeadHash, &g.Took, &g.VerifiedBy)
			}()
			if err != nil {
				t.Fatal(err)
			}
		}
		if got.ID != want.ID || got.Events != want.Events || got.HeadID != want.HeadID || !bytes.Equal(got.HeadHash, want.HeadHash) ||
			got.VerifiedBy != want.VerifiedBy || got.Took.Round(time.Millisecond) != want.Took.Round(time.Millisecond) {
			t.Errorf("read back %+v, want %+v", got, want)
		}
		if (got.Broken == nil) != (want.Broken == nil) {
			t.Errorf("read back broken %+v, want %+v", got.Broken, want.Broken)
		}
	}
	last, _ := s.LastAuditVerification(ctx)
	if last.OK() || last.Broken.ID != ev[1].ID || !last.Broken.At.Equal(ev[1].At) || !strings.Contains(last.Broken.Problem, "hash mismatch") {
		t.Errorf("last verification %+v, broken %+v; want the break at %d", last, last.Broken, ev[1].ID)
	}
}

// reviewFixture is a small audit log for the filter tests: events by two
// people and the system, on two clusters, at known times a day apart.
type reviewFixture struct {
	s        *Store
	alice    *portal.User
	ciroh    *portal.Cluster
	leap     *portal.Cluster
	events   []*portal.AuditEvent
	day0     time.Time
	byAction map[portal.Action][]int64
}

func newReviewFixture(t *testing.T) *reviewFixture {
	t.Helper()
	ctx := context.Background()
	s := newStore(t)
	f := &reviewFixture{s: s, alice: newUser(t, s, "alice", portal.RoleCustomer),
		ciroh: newCluster(t, s, "awi-ciroh"), leap: newCluster(t, s, "leap"),
		day0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), byAction: map[portal.Action][]int64{}}
	add := func(actor string, actorID *int64, action portal.Action, subjectType string, subjectID int64, cluster *portal.Cluster, details map[string]any) {
		e := &portal.AuditEvent{Actor: actor, ActorID: actorID, Action: action, SubjectType: subjectType, Details: details,
			At: f.day0.Add(time.Duration(len(f.events)) * 24 * time.Hour)}
		if subjectID != 0 {
			e.SubjectID = &subjectID
		}
		if cluster != nil {
			e.ClusterID = &cluster.ID
		}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		f.events = append(f.events, e)
		f.byAction[action] = append(f.byAction[action], e.ID)
	}
	aliceID := f.alice.ID
	add(f.alice.Email, &aliceID, portal.ActionSignedIn, portal.SubjectUser, aliceID, nil, map[string]any{"role": "customer"})                  // 0
	add(f.alice.Email, &aliceID, portal.ActionRequestCreated, portal.SubjectRequest, 7, f.ciroh, map[string]any{"key_type": "age"})            // 1
	add("Sam_Staff@2i2c.org", nil, portal.ActionRequestApproved, portal.SubjectRequest, 7, f.ciroh, map[string]any{"note": "100% fine"})       // 2
	add("SamXStaff@2i2c.org", nil, portal.ActionRequestDenied, portal.SubjectRequest, 8, f.leap, map[string]any{"note": "no reason given"})    // 3
	add(portal.ActorSystem, nil, portal.ActionClusterUpdated, portal.SubjectCluster, f.leap.ID, f.leap, map[string]any{"note": "100 percent"}) // 4
	add(f.alice.Email, &aliceID, portal.ActionCredentialDownloaded, portal.SubjectCredential, 3, f.ciroh, map[string]any{"download": 1})       // 5
	return f
}

func (f *reviewFixture) ids(idx ...int) []int64 {
	var out []int64
	for _, i := range idx {
		out = append(out, f.events[i].ID)
	}
	return out
}

func recordIDs(rs []*portal.AuditRecord) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestAuditEventsFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newReviewFixture(t)
	tests := []struct {
		name   string
		filter portal.AuditFilter
		want   []int // indexes into the fixture, newest first
	}{
		{"everything", portal.AuditFilter{}, []int{5, 4, 3, 2, 1, 0}},
		{"actor exact, any case", portal.AuditFilter{Actor: "ALICE@example.org"}, []int{5, 1, 0}},
		{"actor exact is not a prefix", portal.AuditFilter{Actor: "alice@example"}, nil},
		{"actor prefix", portal.AuditFilter{Actor: "sam*"}, []int{3, 2}},
		{"actor prefix with a literal underscore", portal.AuditFilter{Actor: "sam_*"}, []int{2}},
		{"actor star alone is anyone", portal.AuditFilter{Actor: "*"}, []int{5, 4, 3, 2, 1, 0}},
		{"the system", portal.AuditFilter{Actor: "system"}, []int{4}},
		{"action", portal.AuditFilter{Action: portal.ActionRequestCreated}, []int{1}},
		{"cluster", portal.AuditFilter{ClusterID: f.leap.ID}, []int{4, 3}},
		{"subject type", portal.AuditFilter{SubjectType: portal.SubjectRequest}, []int{3, 2, 1}},
		{"subject", portal.AuditFilter{SubjectType: portal.SubjectRequest, SubjectID: 7}, []int{2, 1}},
		{"from, inclusive", portal.AuditFilter{From: f.day0.Add(48 * time.Hour)}, []int{5, 4, 3, 2}},
		{"to, exclusive", portal.AuditFilter{To: f.day0.Add(48 * time.Hour)}, []int{1, 0}},
		{"between", portal.AuditFilter{From: f.day0.Add(24 * time.Hour), To: f.day0.Add(72 * time.Hour)}, []int{2, 1}},
		{"text, any case", portal.AuditFilter{Text: "CUSTOMER"}, []int{0}},
		{"text with a literal percent", portal.AuditFilter{Text: "100%"}, []int{2}},
		{"text with a literal underscore", portal.AuditFilter{Text: "key_type"}, []int{1}},
		{"text matching no event", portal.AuditFilter{Text: "n_o"}, nil},
		{"all together", portal.AuditFilter{Actor: "alice*", Action: portal.ActionCredentialDownloaded, ClusterID: f.ciroh.ID,
			SubjectType: portal.SubjectCredential, SubjectID: 3, From: f.day0, To: f.day0.Add(30 * 24 * time.Hour), Text: "download"}, []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := f.s.AuditEvents(ctx, tt.filter, nil, 50)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := recordIDs(rs), f.ids(tt.want...); !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
			var exported []int64
			err = f.s.EachAuditEvent(ctx, tt.filter, func(r *portal.AuditRecord) error {
				exported = append(exported, r.ID)
				return nil
			})
			want := f.ids(tt.want...)
			slices.Reverse(want)
			if err != nil || !slices.Equal(exported, want) {
				t.Errorf("export %v (%v), want %v oldest first", exported, err, want)
			}
		})
	}
}

func TestAuditRecordJoinsAndKeepsTheChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newReviewFixture(t)
	rs, err := f.s.AuditEvents(ctx, portal.AuditFilter{}, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]*portal.AuditRecord{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	if r := byID[f.events[0].ID]; r.SubjectEmail != f.alice.Email || r.ClusterName != "" {
		t.Errorf("user subject: email %q, cluster %q", r.SubjectEmail, r.ClusterName)
	}
	if r := byID[f.events[3].ID]; r.ClusterName != "leap" || r.SubjectEmail != "" {
		t.Errorf("request subject: email %q, cluster %q", r.SubjectEmail, r.ClusterName)
	}
	// What the review reads is what was hashed: recomputing gives the hash.
	for _, r := range rs {
		h, err := r.ChainHash(r.PrevHash)
		if err != nil || !bytes.Equal(h, r.Hash) {
			t.Errorf("event %d read back hashes to %x, stored %x (%v)", r.ID, h, r.Hash, err)
		}
	}
}

func TestAuditEventsKeysetPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// Seven events, three of them at the same instant: the cursor's id breaks
	// the tie.
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var want []int64
	for i := range 7 {
		e := &portal.AuditEvent{Actor: "a@example.org", Action: portal.ActionSignedIn, At: at.Add(time.Duration(min(i, 3)) * time.Minute)}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID)
	}
	slices.Reverse(want)

	var got []int64
	var cursor *portal.AuditCursor
	for page := 0; ; page++ {
		rs, err := s.AuditEvents(ctx, portal.AuditFilter{}, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		got = append(got, recordIDs(rs)...)
		last := rs[len(rs)-1]
		cursor = &portal.AuditCursor{At: last.At, ID: last.ID}
		if page == 0 {
			// Events arriving while someone pages do not shift the pages.
			for range 3 {
				late := &portal.AuditEvent{Actor: "late@example.org", Action: portal.ActionSignedIn, At: at.Add(time.Hour)}
				if err := s.AppendAudit(ctx, late); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged through %v, want %v: each event once, newest first", got, want)
	}
}

func TestLikeEscape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{`a%b_c\d`: `a\%b\_c\\d`, "plain": "plain", "": ""} {
		if got := likeEscape(in); got != want {
			t.Errorf("likeEscape(%q) = %q, want %q", in, got, want)
		}
	}
}
