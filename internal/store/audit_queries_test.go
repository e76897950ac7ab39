package store

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// reviewFixture is a small audit log for the filter tests: events by two
// people and the system, on two clusters, at known times a day apart.
type reviewFixture struct {
	s      *Store
	alice  *portal.User
	ciroh  *portal.Cluster
	leap   *portal.Cluster
	events []*portal.AuditEvent
	day0   time.Time
}

func newReviewFixture(t *testing.T) *reviewFixture {
	t.Helper()
	s := newStore(t)
	f := &reviewFixture{s: s, alice: newUser(t, s, "alice", portal.RoleCustomer),
		ciroh: newCluster(t, s, "awi-ciroh"), leap: newCluster(t, s, "leap"),
		day0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	add := func(actor string, actorID *int64, action portal.Action, subjectType string, subjectID int64, cluster *portal.Cluster, details map[string]any) {
		e := &portal.AuditEvent{Actor: actor, ActorID: actorID, Action: action, SubjectType: subjectType, Details: details,
			At: f.day0.Add(time.Duration(len(f.events)) * 24 * time.Hour)}
		if subjectID != 0 {
			e.SubjectID = &subjectID
		}
		if cluster != nil {
			e.ClusterID = &cluster.ID
		}
		appendDated(t, s, e)
		f.events = append(f.events, e)
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
	ctx := t.Context()
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
	ctx := t.Context()
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
	ctx, s := start(t)
	// Seven events, three of them at the same instant: the cursor's id breaks
	// the tie.
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var want []int64
	for i := range 7 {
		e := &portal.AuditEvent{Actor: "a@example.org", Action: portal.ActionSignedIn, At: at.Add(time.Duration(min(i, 3)) * time.Minute)}
		appendDated(t, s, e)
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
				appendDated(t, s, late)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged through %v, want %v: each event once, newest first", got, want)
	}
}

func TestLikeEscape(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"wildcards and the escape character", `a%b_c\d`, `a\%b\_c\\d`},
		{"plain", "plain", "plain"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := likeEscape(tt.in); got != tt.want {
				t.Errorf("likeEscape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
