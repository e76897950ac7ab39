package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

func TestCreateCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	alice := newUser(t, s, "alice", portal.RoleCustomer)
	c := newCluster(t, s, "awi-ciroh")
	r := approvedRequest(t, s, alice, staff, c)

	issued := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cr := demoCredential(r, "awi-ciroh-alice", issued, issued.Add(90*24*time.Hour))
	if err := s.CreateCredential(ctx, cr); err != nil {
		t.Fatal(err)
	}
	if cr.ID == 0 || !cr.IssuedAt.Equal(issued) {
		t.Errorf("CreateCredential filled ID %d, issued %v", cr.ID, cr.IssuedAt)
	}

	got, err := s.CredentialByID(ctx, cr.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *cr
	want.Ciphertext, want.PasswordHash = nil, "" // not read with the rest
	want.ClusterName, want.PrometheusURL, want.OwnerEmail = c.Name, c.PrometheusURL, alice.Email
	if !sameCredential(got, &want) {
		t.Errorf("CredentialByID = %+v\nwant %+v", got, &want)
	}
	if got.State(issued.Add(time.Hour)) != portal.CredentialActive {
		t.Errorf("a fresh credential is %s", got.State(issued.Add(time.Hour)))
	}

	ciphertext, err := s.CredentialCiphertext(ctx, cr.ID)
	if err != nil || !bytes.Equal(ciphertext, cr.Ciphertext) {
		t.Errorf("CredentialCiphertext = %q, %v; want %q", ciphertext, err, cr.Ciphertext)
	}
	if req, err := s.RequestByID(ctx, r.ID); err != nil || req.CredentialID == nil || *req.CredentialID != cr.ID {
		t.Errorf("the request does not name its credential: %+v, %v", req, err)
	}

	// Without an issue time, the database's clock stamps it.
	now := newCredential(t, s, alice, staff, c, "awi-ciroh-alice-2", time.Time{}, time.Now().Add(time.Hour))
	if now.IssuedAt.IsZero() || time.Since(now.IssuedAt).Abs() > time.Minute {
		t.Errorf("zero IssuedAt became %v, want now", now.IssuedAt)
	}

	mine, err := s.CredentialsByUser(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 2 || mine[0].ID != now.ID || mine[1].ID != cr.ID {
		t.Fatalf("CredentialsByUser = %v; want %d then %d", mine, now.ID, cr.ID)
	}
	if !sameCredential(mine[1], &want) {
		t.Errorf("CredentialsByUser[1] = %+v\nwant %+v", mine[1], &want)
	}
	if others, err := s.CredentialsByUser(ctx, staff.ID); err != nil || len(others) != 0 {
		t.Errorf("staff's credentials = %v, %v; want none", others, err)
	}
}

// sameCredential compares what two credentials hold, times by the instant
// they name.
func sameCredential(a, b *portal.Credential) bool {
	return reflect.DeepEqual(inUTC(*a), inUTC(*b))
}

func inUTC(c portal.Credential) portal.Credential {
	c.IssuedAt, c.ExpiresAt = c.IssuedAt.UTC(), c.ExpiresAt.UTC()
	for _, p := range []**time.Time{&c.RevokedAt, &c.LastDownloadAt} {
		if *p != nil {
			t := (*p).UTC()
			*p = &t
		}
	}
	return c
}

func TestCreateCredentialConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	alice, bob := newUser(t, s, "alice", portal.RoleCustomer), newUser(t, s, "bob", portal.RoleCustomer)
	c1, c2 := newCluster(t, s, "one"), newCluster(t, s, "two")
	issued := time.Now()
	expires := issued.Add(time.Hour)

	first := newCredential(t, s, alice, staff, c1, "shared-name", issued, expires)
	firstRequest, err := s.RequestByID(ctx, first.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		request  *portal.Request
		username string
		wantErr  error
	}{
		{"a second credential for one request", firstRequest, "another-name", portal.ErrConflict},
		{"a username taken on the cluster", approvedRequest(t, s, bob, staff, c1), "shared-name", portal.ErrConflict},
		{"the same username on another cluster", approvedRequest(t, s, bob, staff, c2), "shared-name", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateCredential(ctx, demoCredential(tt.request, tt.username, issued, expires))
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("CreateCredential = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestCreateCredentialRefusesWhatTheSchemaForbids(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	alice := newUser(t, s, "alice", portal.RoleCustomer)
	r := approvedRequest(t, s, alice, staff, newCluster(t, s, "x"))
	issued := time.Now()
	tests := []struct {
		name   string
		mutate func(*portal.Credential)
	}{
		{"username with capitals", func(c *portal.Credential) { c.Username = "Alice" }},
		{"username too short", func(c *portal.Credential) { c.Username = "al" }},
		{"password hash not bcrypt", func(c *portal.Credential) { c.PasswordHash = "hunter2" }},
		{"no ciphertext", func(c *portal.Credential) { c.Ciphertext = nil }},
		{"empty ciphertext", func(c *portal.Credential) { c.Ciphertext = []byte{} }},
		{"expires when issued", func(c *portal.Credential) { c.ExpiresAt = c.IssuedAt }},
		{"unknown request", func(c *portal.Credential) { c.RequestID = 424242 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := demoCredential(r, "alice-x", issued, issued.Add(time.Hour))
			tt.mutate(c)
			if err := s.CreateCredential(ctx, c); !errors.Is(err, portal.ErrInvalid) {
				t.Errorf("CreateCredential(%+v) = %v, want ErrInvalid", c, err)
			}
		})
	}
	if cs, _ := s.CredentialsByUser(ctx, alice.ID); len(cs) != 0 {
		t.Errorf("refused credentials were stored: %v", cs)
	}
}

func TestCredentialNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	const missing = 424242
	tests := []struct {
		name string
		call func() error
	}{
		{"CredentialByID", func() error { _, err := s.CredentialByID(ctx, missing); return err }},
		{"CredentialCiphertext", func() error { _, err := s.CredentialCiphertext(ctx, missing); return err }},
		{"RecordDownload", func() error { _, err := s.RecordDownload(ctx, missing); return err }},
		{"RevokeCredential", func() error { return s.RevokeCredential(ctx, missing, &staff.ID, "lost", false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, portal.ErrNotFound) {
				t.Errorf("%s of a missing credential = %v, want ErrNotFound", tt.name, err)
			}
		})
	}
	for _, list := range []func() ([]*portal.Credential, error){
		func() ([]*portal.Credential, error) { return s.CredentialsByUser(ctx, missing) },
		func() ([]*portal.Credential, error) { return s.ActiveCredentials(ctx, missing, time.Now()) },
		func() ([]*portal.Credential, error) { return s.Revocations(ctx) },
	} {
		if cs, err := list(); err != nil || len(cs) != 0 {
			t.Errorf("listing with nothing to list = %v, %v; want empty", cs, err)
		}
	}
}

func TestRecordDownload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	cr := newCredential(t, s, newUser(t, s, "alice", portal.RoleCustomer), staff, newCluster(t, s, "x"),
		"alice-x", time.Now(), time.Now().Add(time.Hour))
	if cr.DownloadCount != 0 || cr.LastDownloadAt != nil {
		t.Fatalf("a new credential was downloaded: %+v", cr)
	}
	var last time.Time
	for want := 1; want <= 2; want++ {
		if n, err := s.RecordDownload(ctx, cr.ID); err != nil || n != want {
			t.Fatalf("RecordDownload: %d, %v; want %d", n, err, want)
		}
		got, err := s.CredentialByID(ctx, cr.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.DownloadCount != want || got.LastDownloadAt == nil || got.LastDownloadAt.Before(last) {
			t.Errorf("after download %d: count %d, last %v (previous %v)", want, got.DownloadCount, got.LastDownloadAt, last)
		}
		if got.LastDownloadAt != nil {
			last = *got.LastDownloadAt
		}
	}
}

func TestActiveCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	alice, bob := newUser(t, s, "alice", portal.RoleCustomer), newUser(t, s, "bob", portal.RoleCustomer)
	c, other := newCluster(t, s, "x"), newCluster(t, s, "other")
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	past, future := now.Add(-90*day), now.Add(90*day)

	// Created out of order, to see them sorted. "a-z" sorts before "ab"
	// bytewise, though not in every locale.
	zed := newCredential(t, s, alice, staff, c, "zed", now.Add(-day), future)
	ab := newCredential(t, s, bob, staff, c, "ab-x", now.Add(-day), now.Add(time.Microsecond))
	az := newCredential(t, s, alice, staff, c, "a-z", now.Add(-day), future)
	newCredential(t, s, alice, staff, c, "expired", past, now.Add(-day))
	newCredential(t, s, bob, staff, c, "expires-now", past, now)
	revoked := newCredential(t, s, bob, staff, c, "revoked", now.Add(-day), future)
	if err := s.RevokeCredential(ctx, revoked.ID, &staff.ID, "left the project", false); err != nil {
		t.Fatal(err)
	}
	newCredential(t, s, alice, staff, other, "elsewhere", now.Add(-day), future)

	got, err := s.ActiveCredentials(ctx, c.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cr := range got {
		names = append(names, cr.Username)
	}
	if want := []string{"a-z", "ab-x", "zed"}; !slices.Equal(names, want) {
		t.Fatalf("ActiveCredentials = %v, want %v", names, want)
	}
	for i, want := range []*portal.Credential{az, ab, zed} {
		cr := got[i]
		if cr.ID != want.ID || cr.UserID != want.UserID || cr.ClusterID != c.ID ||
			cr.PasswordHash != want.PasswordHash || !cr.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("[%d] = %+v, want %+v", i, cr, want)
		}
		if cr.State(now) != portal.CredentialActive {
			t.Errorf("[%d] %s is %s at now", i, cr.Username, cr.State(now))
		}
	}
	// A moment later, the one expiring next has gone.
	later, err := s.ActiveCredentials(ctx, c.ID, now.Add(time.Second))
	if err != nil || len(later) != 2 || later[0].Username != "a-z" || later[1].Username != "zed" {
		t.Errorf("a second later: %v, %v", later, err)
	}
}

// TestActiveCredentialsUsesIndex checks, on a few thousand credentials most of
// which are revoked or expired as they pile up over time, that the query
// behind every Prometheus web config reads credentials_active_idx rather than
// the table.
func TestActiveCredentialsUsesIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	alice := newUser(t, s, "alice", portal.RoleCustomer)
	for _, name := range []string{"one", "two", "three", "four", "five"} {
		newCluster(t, s, name)
	}
	// 5 clusters × 1000 credentials: a tenth revoked, four tenths expired.
	_, err := s.db.Exec(ctx, `
		WITH r AS (
			INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification,
			                      status, decided_by, decided_at)
			SELECT $1, clusters.id, 'age1x', 'age-x25519', 'fp', 'a good reason here', 'approved', $2, now()
			FROM clusters, generate_series(1, 1000)
			RETURNING id, user_id, cluster_id
		)
		INSERT INTO credentials (request_id, user_id, cluster_id, username, password_hash, ciphertext,
		                         key_fingerprint, issued_at, expires_at, revoked_at)
		SELECT id, user_id, cluster_id, 'user-' || id, '$2a$10$x', '\x01', 'fp',
		       now() - interval '100 days',
		       now() + CASE WHEN id % 10 < 4 THEN interval '-1 day' ELSE interval '30 days' END,
		       CASE WHEN id % 10 = 9 THEN now() END
		FROM r`, alice.ID, staff.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `ANALYZE credentials`); err != nil {
		t.Fatal(err)
	}
	one, err := s.ClusterByName(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	active, err := s.ActiveCredentials(ctx, one.ID, time.Now())
	if err != nil || len(active) != 500 {
		t.Fatalf("ActiveCredentials = %d credentials, %v; want 500", len(active), err)
	}

	var plan []byte
	err = s.db.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+activeCredentialsQuery, one.ID, time.Now()).Scan(&plan)
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, plan, "", "  "); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(indented.String(), `"Index Name": "credentials_active_idx"`) {
		t.Errorf("ActiveCredentials does not use credentials_active_idx:\n%s", indented.String())
	}
}

func TestRevokeCredential(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	alice := newUser(t, s, "alice", portal.RoleCustomer)
	c := newCluster(t, s, "x")
	issued := time.Now()
	first := newCredential(t, s, alice, staff, c, "alice-1", issued, issued.Add(time.Hour))
	second := newCredential(t, s, alice, staff, c, "alice-2", issued, issued.Add(time.Hour))
	newCredential(t, s, alice, staff, c, "alice-3", issued, issued.Add(time.Hour))

	if err := s.RevokeCredential(ctx, first.ID, &staff.ID, "left the project", false); err != nil {
		t.Fatal(err)
	}
	// The owner reports it compromised; nobody in particular when the portal does it.
	if err := s.RevokeCredential(ctx, second.ID, nil, "key leaked", true); err != nil {
		t.Fatal(err)
	}
	got, err := s.CredentialByID(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt == nil || got.RevokedBy == nil || *got.RevokedBy != staff.ID ||
		got.RevokeReason != "left the project" || got.Compromised || got.State(time.Now()) != portal.CredentialRevoked {
		t.Errorf("after revoking: %+v", got)
	}

	for _, id := range []int64{first.ID, second.ID} {
		if err := s.RevokeCredential(ctx, id, &staff.ID, "again", true); !errors.Is(err, portal.ErrConflict) {
			t.Errorf("revoking credential %d twice: %v, want ErrConflict", id, err)
		}
	}
	if again, _ := s.CredentialByID(ctx, first.ID); !sameCredential(again, got) {
		t.Errorf("a second revocation changed the credential: %+v", again)
	}
	if err := s.RevokeCredential(ctx, first.ID+100, &staff.ID, "gone", false); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("revoking a missing credential: %v, want ErrNotFound", err)
	}

	revs, err := s.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 || revs[0].ID != second.ID || revs[1].ID != first.ID {
		t.Fatalf("Revocations = %v; want %d then %d", revs, second.ID, first.ID)
	}
	if r := revs[0]; !r.Compromised || r.RevokedBy != nil || r.RevokeReason != "key leaked" ||
		r.ClusterName != "x" || r.OwnerEmail != alice.Email || r.PrometheusURL != c.PrometheusURL || r.Ciphertext != nil {
		t.Errorf("Revocations[0] = %+v", r)
	}
}
