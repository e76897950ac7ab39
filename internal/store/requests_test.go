package store

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

func TestCreateRequest(t *testing.T) {
	ctx, s := start(t)
	alice := newUser(t, s, "alice", portal.RoleCustomer)
	c := newCluster(t, s, "awi-ciroh")

	r := newRequest(t, s, alice, c)
	if r.ID == 0 || r.Status != portal.StatusPending || r.CreatedAt.IsZero() {
		t.Errorf("CreateRequest did not fill ID, status and time: %+v", r)
	}
	got, err := s.RequestByID(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(readRequest(r, c, alice), got); diff != "" {
		t.Errorf("RequestByID (-want +got):\n%s", diff)
	}

	pending, err := s.PendingRequestFor(ctx, alice.ID, c.ID)
	if err != nil || pending.ID != r.ID {
		t.Errorf("PendingRequestFor = %+v, %v; want request %d", pending, err, r.ID)
	}
	if err := s.CreateRequest(ctx, demoRequest(alice, c)); !errors.Is(err, portal.ErrConflict) {
		t.Errorf("second pending request for one cluster: %v, want ErrConflict", err)
	}
	// Another cluster, or another customer, is no duplicate.
	newRequest(t, s, alice, newCluster(t, s, "other"))
	newRequest(t, s, newUser(t, s, "bob", portal.RoleCustomer), c)

	// Once the first is decided, the customer may ask again.
	if err := s.DecideRequest(ctx, r.ID, portal.StatusCancelled, alice.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PendingRequestFor(ctx, alice.ID, c.ID); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("PendingRequestFor after cancelling: %v, want ErrNotFound", err)
	}
	again := newRequest(t, s, alice, c)
	if again.ID == r.ID {
		t.Errorf("a new request reused id %d", r.ID)
	}
}

func TestCreateRequestRefusesWhatTheSchemaForbids(t *testing.T) {
	ctx, s := start(t)
	alice := newUser(t, s, "alice", portal.RoleCustomer)
	c := newCluster(t, s, "x")
	valid := func() *portal.Request { return demoRequest(alice, c) }
	wantInvalid(t, valid, s.CreateRequest, []mutation[portal.Request]{
		{"justification too short", func(r *portal.Request) { r.Justification = "because" }},
		{"empty public key", func(r *portal.Request) { r.PublicKey = "" }},
		{"unknown cluster", func(r *portal.Request) { r.ClusterID = 424242 }},
		{"unknown user", func(r *portal.Request) { r.UserID = 424242 }},
		{"renews an unknown credential", func(r *portal.Request) { id := int64(424242); r.RenewsCredentialID = &id }},
	})
	if rs, _ := s.UserRequestsPage(ctx, alice.ID, "", nil, 100); len(rs) != 0 {
		t.Errorf("refused requests were stored: %v", rs)
	}
}

func TestRequestNotFound(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
	c := newCluster(t, s, "x")
	const missing = 424242
	wantNotFound(t, []call{
		{"RequestByID", func() error { _, err := s.RequestByID(ctx, missing); return err }},
		{"LockRequest", func() error {
			return s.InTx(ctx, func(tx *Store) error { _, err := tx.LockRequest(ctx, missing); return err })
		}},
		{"PendingRequestFor", func() error { _, err := s.PendingRequestFor(ctx, alice.ID, c.ID); return err }},
		{"DecideRequest", func() error { return s.DecideRequest(ctx, missing, portal.StatusApproved, staff.ID, "ok") }},
	})
	wantEmpty(t,
		func() ([]*portal.Request, error) { return s.UserRequestsPage(ctx, missing, "", nil, 100) },
		func() ([]*portal.Request, error) { return s.StatusRequestsPage(ctx, portal.StatusPending, nil, 100) },
	)
}

func TestDecideRequest(t *testing.T) {
	ctx, s := start(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	c := newCluster(t, s, "x")
	tests := []struct {
		name      string
		requester *portal.User
		status    portal.RequestStatus
		decider   *portal.User // nil: the requester
		note      string
		wantErr   error
	}{
		{"staff approve", newUser(t, s, "a", portal.RoleCustomer), portal.StatusApproved, staff, "", nil},
		{"staff deny with a note", newUser(t, s, "b", portal.RoleCustomer), portal.StatusDenied, staff, "no such project", nil},
		{"requester cancels", newUser(t, s, "c", portal.RoleCustomer), portal.StatusCancelled, nil, "", nil},
		{"staff cancel", newUser(t, s, "d", portal.RoleCustomer), portal.StatusCancelled, staff, "duplicate", nil},
		// Staff may ask for credentials too, but not grant them to themselves.
		{"self-approval", newUser(t, s, "staffer", portal.RoleStaff), portal.StatusApproved, nil, "", portal.ErrInvalid},
		{"self-denial", newUser(t, s, "i", portal.RoleCustomer), portal.StatusDenied, nil, "nah", portal.ErrInvalid},
		{"deny without a note", newUser(t, s, "e", portal.RoleCustomer), portal.StatusDenied, staff, "", portal.ErrInvalid},
		{"back to pending", newUser(t, s, "f", portal.RoleCustomer), portal.StatusPending, staff, "", portal.ErrInvalid},
		{"unknown status", newUser(t, s, "g", portal.RoleCustomer), "granted", staff, "", portal.ErrInvalid},
		{"unknown decider", newUser(t, s, "h", portal.RoleCustomer), portal.StatusApproved, &portal.User{ID: 424242}, "", portal.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest(t, s, tt.requester, c)
			decider := tt.decider
			if decider == nil {
				decider = tt.requester
			}
			err := s.DecideRequest(ctx, r.ID, tt.status, decider.ID, tt.note)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecideRequest = %v, want %v", err, tt.wantErr)
			}
			got, err := s.RequestByID(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			pending := readRequest(r, c, tt.requester)
			if tt.wantErr != nil {
				if diff := cmp.Diff(pending, got); diff != "" {
					t.Errorf("a refused decision changed the request (-before +after):\n%s", diff)
				}
				return
			}
			decided := *pending
			decided.Status, decided.DecidedBy, decided.DecisionNote, decided.DeciderEmail = tt.status, &decider.ID, tt.note, decider.Email
			if diff := cmp.Diff(&decided, got, cmpopts.IgnoreFields(portal.Request{}, "DecidedAt")); diff != "" || got.DecidedAt == nil {
				t.Errorf("after deciding (-want +got):\n%s\ndecided at %v", diff, got.DecidedAt)
			}
			// Only a pending request can change.
			for _, status := range []portal.RequestStatus{portal.StatusApproved, portal.StatusDenied, portal.StatusCancelled} {
				if err := s.DecideRequest(ctx, r.ID, status, staff.ID, "again"); !errors.Is(err, portal.ErrConflict) {
					t.Errorf("deciding %s request %s: %v, want ErrConflict", got.Status, status, err)
				}
			}
			again, err := s.RequestByID(ctx, r.ID)
			if diff := cmp.Diff(got, again); err != nil || diff != "" {
				t.Errorf("a second decision changed the request (%v), -first +second:\n%s", err, diff)
			}
		})
	}
}

// TestRequestListings: each list holds its requests in its order, with their
// display fields but not their public keys, which only a request read by its
// ID carries.
func TestRequestListings(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
	bob := newUser(t, s, "bob", portal.RoleCustomer)
	c1, c2, c3 := newCluster(t, s, "one"), newCluster(t, s, "two"), newCluster(t, s, "three")

	// In order of creation.
	a1 := approvedRequest(t, s, alice, staff, c1)
	b1 := newRequest(t, s, bob, c1)
	a2 := newRequest(t, s, alice, c2)
	a3 := approvedRequest(t, s, alice, staff, c3)
	b2 := approvedRequest(t, s, bob, staff, c2)
	a4 := newRequest(t, s, alice, c1)
	cr := demoCredential(a3, "alice-three", time.Now(), time.Now().Add(time.Hour))
	if err := s.CreateCredential(ctx, cr); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		list func() ([]*portal.Request, error)
		want []*portal.Request
	}{
		{"alice's, newest first", func() ([]*portal.Request, error) { return s.UserRequestsPage(ctx, alice.ID, "", nil, 100) },
			[]*portal.Request{a4, a3, a2, a1}},
		{"bob's", func() ([]*portal.Request, error) { return s.UserRequestsPage(ctx, bob.ID, "", nil, 100) },
			[]*portal.Request{b2, b1}},
		{"the queue, oldest first", func() ([]*portal.Request, error) { return s.StatusRequestsPage(ctx, portal.StatusPending, nil, 100) },
			[]*portal.Request{b1, a2, a4}},
		{"approved, newest first", func() ([]*portal.Request, error) { return s.StatusRequestsPage(ctx, portal.StatusApproved, nil, 100) },
			[]*portal.Request{b2, a3, a1}},
		{"denied: none", func() ([]*portal.Request, error) { return s.StatusRequestsPage(ctx, portal.StatusDenied, nil, 100) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.list()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d requests, want %d", len(got), len(tt.want))
			}
			for i, r := range got {
				if r.ID != tt.want[i].ID {
					t.Errorf("[%d] is request %d, want %d", i, r.ID, tt.want[i].ID)
				}
				// Display fields come with every listing.
				owner := map[int64]*portal.User{alice.ID: alice, bob.ID: bob}[r.UserID]
				if r.ClusterName == "" || r.RequesterEmail != owner.Email || r.RequesterName != owner.Name {
					t.Errorf("[%d] display fields missing: %+v", i, r)
				}
				if decided := r.Status != portal.StatusPending; decided != (r.DeciderEmail == staff.Email) {
					t.Errorf("[%d] %s request has decider %q", i, r.Status, r.DeciderEmail)
				}
				if wantCred := r.ID == a3.ID; wantCred != (r.CredentialID != nil) || (wantCred && *r.CredentialID != cr.ID) {
					t.Errorf("[%d] request %d has credential %v", i, r.ID, r.CredentialID)
				}
				// The key is not: lists show its fingerprint, and one
				// request read by ID has it whole.
				if r.PublicKey != "" || r.KeyFingerprint != tt.want[i].KeyFingerprint {
					t.Errorf("[%d] listed with key %q and fingerprint %q, want no key and %q", i, r.PublicKey, r.KeyFingerprint, tt.want[i].KeyFingerprint)
				}
			}
		})
	}
	r, err := s.RequestByID(ctx, a1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.PublicKey != a1.PublicKey {
		t.Errorf("RequestByID(%d): key %q, want %q", a1.ID, r.PublicKey, a1.PublicKey)
	}
}

// TestLockRequestSerialises checks that a second LockRequest of one request
// waits until the transaction holding the lock ends, and then sees what it
// committed: two approvals of one request cannot both find it pending.
func TestLockRequestSerialises(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
	r := newRequest(t, s, alice, newCluster(t, s, "x"))

	firstLocked, releaseFirst := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- s.InTx(ctx, func(tx *Store) error {
			locked, err := tx.LockRequest(ctx, r.ID)
			if err != nil {
				close(firstLocked)
				return err
			}
			if locked.Status != portal.StatusPending || locked.RequesterEmail == "" {
				t.Errorf("first locker read %+v", locked)
			}
			close(firstLocked)
			<-releaseFirst
			return tx.DecideRequest(ctx, r.ID, portal.StatusApproved, staff.ID, "first")
		})
	}()
	<-firstLocked

	type result struct {
		r   *portal.Request
		err error
	}
	secondDone := make(chan result, 1)
	go func() {
		var res result
		res.err = s.InTx(ctx, func(tx *Store) error {
			res.r, res.err = tx.LockRequest(ctx, r.ID)
			return res.err
		})
		secondDone <- res
	}()

	// Wait until PostgreSQL reports a session waiting for a lock: the
	// second locker. Should it get the lock instead, it finishes first.
	for waiting := false; !waiting; {
		select {
		case res := <-secondDone:
			close(releaseFirst)
			t.Fatalf("the second LockRequest returned while the first held the lock: %+v, %v", res.r, res.err)
		case <-time.After(10 * time.Millisecond):
		}
		err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
		if err != nil {
			close(releaseFirst)
			t.Fatal(err)
		}
	}
	close(releaseFirst)
	if err := <-firstDone; err != nil {
		t.Fatalf("first locker: %v", err)
	}
	res := <-secondDone
	if res.err != nil {
		t.Fatalf("second locker: %v", res.err)
	}
	if res.r.Status != portal.StatusApproved || res.r.DecisionNote != "first" {
		t.Errorf("the second locker read %+v; want the first one's approval", res.r)
	}
}
