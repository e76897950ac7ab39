package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

func TestCreateCredential(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
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
	want := readCredential(cr, c, alice)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CredentialByID (-want +got):\n%s", diff)
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

	mine, err := s.UserCredentialsPage(ctx, alice.ID, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*portal.Credential{readCredential(now, c, alice), want}, mine, toMicroseconds); diff != "" {
		t.Errorf("UserCredentialsPage, newest first (-want +got):\n%s", diff)
	}
	if others, err := s.UserCredentialsPage(ctx, staff.ID, nil, 100); err != nil || len(others) != 0 {
		t.Errorf("staff's credentials = %v, %v; want none", others, err)
	}
}

func TestCreateCredentialConflicts(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
	bob := newUser(t, s, "bob", portal.RoleCustomer)
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
	ctx, s := start(t)
	staff, alice := people(t, s)
	r := approvedRequest(t, s, alice, staff, newCluster(t, s, "x"))
	issued := time.Now()
	valid := func() *portal.Credential { return demoCredential(r, "alice-x", issued, issued.Add(time.Hour)) }
	wantInvalid(t, valid, s.CreateCredential, []mutation[portal.Credential]{
		{"username with capitals", func(c *portal.Credential) { c.Username = "Alice" }},
		{"username too short", func(c *portal.Credential) { c.Username = "al" }},
		{"password hash not bcrypt", func(c *portal.Credential) { c.PasswordHash = "hunter2" }},
		{"no ciphertext", func(c *portal.Credential) { c.Ciphertext = nil }},
		{"empty ciphertext", func(c *portal.Credential) { c.Ciphertext = []byte{} }},
		{"expires when issued", func(c *portal.Credential) { c.ExpiresAt = c.IssuedAt }},
		{"unknown request", func(c *portal.Credential) { c.RequestID = 424242 }},
	})
	if cs, _ := s.UserCredentialsPage(ctx, alice.ID, nil, 100); len(cs) != 0 {
		t.Errorf("refused credentials were stored: %v", cs)
	}
}

func TestCredentialNotFound(t *testing.T) {
	ctx, s := start(t)
	staff := newUser(t, s, "staff", portal.RoleStaff)
	const missing = 424242
	wantNotFound(t, []call{
		{"CredentialByID", func() error { _, err := s.CredentialByID(ctx, missing); return err }},
		{"CredentialCiphertext", func() error { _, err := s.CredentialCiphertext(ctx, missing); return err }},
		{"RecordDownload", func() error { _, err := s.RecordDownload(ctx, missing); return err }},
		{"RevokeCredential", func() error { return s.RevokeCredential(ctx, missing, &staff.ID, "lost", false) }},
	})
	wantEmpty(t,
		func() ([]*portal.Credential, error) { return s.UserCredentialsPage(ctx, missing, nil, 100) },
		func() ([]*portal.Credential, error) { return s.ActiveCredentials(ctx, missing, time.Now()) },
		func() ([]*portal.Credential, error) { return s.RevocationsPage(ctx, nil, 100) },
	)
}

func TestRecordDownload(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
	cr := newCredential(t, s, alice, staff, newCluster(t, s, "x"), "alice-x", time.Now(), time.Now().Add(time.Hour))
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
	ctx, s := start(t)
	staff, alice := people(t, s)
	bob := newUser(t, s, "bob", portal.RoleCustomer)
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

	// Only what a Prometheus web config needs is read.
	active := func(crs ...*portal.Credential) []*portal.Credential {
		var out []*portal.Credential
		for _, cr := range crs {
			out = append(out, &portal.Credential{ID: cr.ID, UserID: cr.UserID, ClusterID: cr.ClusterID,
				Username: cr.Username, PasswordHash: cr.PasswordHash, ExpiresAt: cr.ExpiresAt})
		}
		return out
	}
	got, err := s.ActiveCredentials(ctx, c.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(active(az, ab, zed), got); diff != "" {
		t.Fatalf("ActiveCredentials (-want +got):\n%s", diff)
	}
	for i, cr := range got {
		if cr.State(now) != portal.CredentialActive {
			t.Errorf("[%d] %s is %s at now", i, cr.Username, cr.State(now))
		}
	}
	// A moment later, the one expiring next has gone.
	later, err := s.ActiveCredentials(ctx, c.ID, now.Add(time.Second))
	if diff := cmp.Diff(active(az, zed), later); err != nil || diff != "" {
		t.Errorf("a second later (%v), -want +got:\n%s", err, diff)
	}
}

// TestActiveCredentialsUsesIndex checks, on a few thousand credentials most of
// which are revoked or expired as they pile up over time, that the query
// behind every Prometheus web config reads credentials_active_idx rather than
// the table.
func TestActiveCredentialsUsesIndex(t *testing.T) {
	ctx, s := start(t)
	staff, alice := people(t, s)
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
	ctx, s := start(t)
	staff, alice := people(t, s)
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
	// revoked is cr as read back once revoked; the database says when.
	revoked := func(cr *portal.Credential, by *int64, reason string, compromised bool) *portal.Credential {
		want := readCredential(cr, c, alice)
		want.RevokedBy, want.RevokeReason, want.Compromised = by, reason, compromised
		return want
	}
	ignoreRevokedAt := cmpopts.IgnoreFields(portal.Credential{}, "RevokedAt")
	diff := cmp.Diff(revoked(first, &staff.ID, "left the project", false), got, toMicroseconds, ignoreRevokedAt)
	if diff != "" || got.State(time.Now()) != portal.CredentialRevoked {
		t.Errorf("after revoking, %s (-want +got):\n%s", got.State(time.Now()), diff)
	}

	for _, id := range []int64{first.ID, second.ID} {
		if err := s.RevokeCredential(ctx, id, &staff.ID, "again", true); !errors.Is(err, portal.ErrConflict) {
			t.Errorf("revoking credential %d twice: %v, want ErrConflict", id, err)
		}
	}
	again, err := s.CredentialByID(ctx, first.ID)
	if diff := cmp.Diff(got, again); err != nil || diff != "" {
		t.Errorf("a second revocation changed the credential (%v), -first +second:\n%s", err, diff)
	}
	if err := s.RevokeCredential(ctx, first.ID+100, &staff.ID, "gone", false); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("revoking a missing credential: %v, want ErrNotFound", err)
	}

	revs, err := s.RevocationsPage(ctx, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Newest first.
	want := []*portal.Credential{revoked(second, nil, "key leaked", true), got}
	if diff := cmp.Diff(want, revs, toMicroseconds, ignoreRevokedAt); diff != "" {
		t.Fatalf("RevocationsPage (-want +got):\n%s", diff)
	}
	if revs[0].RevokedAt == nil {
		t.Errorf("Revocations[0] has no revocation time: %+v", revs[0])
	}
}
