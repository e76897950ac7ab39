package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecordDueReminders(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	ctx, s := start(t)
	staff, alice := people(t, s)
	c := newCluster(t, s, "x")
	soon := newCredential(t, s, alice, staff, c, "alice-soon", now.Add(-80*day), now.Add(10*day))
	newCredential(t, s, alice, staff, c, "alice-later", now.Add(-60*day), now.Add(30*day))
	revoked := newCredential(t, s, alice, staff, c, "alice-revoked", now.Add(-80*day), now.Add(10*day))
	if err := s.RevokeCredential(ctx, revoked.ID, &staff.ID, "left the project", false); err != nil {
		t.Fatal(err)
	}

	// Ten days out, the 14-day reminder is due and the 3-day one is not yet.
	got, err := s.RecordDueReminders(ctx, []int{14, 3}, now)
	want := []Reminder{{CredentialID: soon.ID, ClusterID: c.ID, UserID: alice.ID, DaysBefore: 14, ExpiresAt: soon.ExpiresAt,
		ClusterName: "x", Username: "alice-soon", OwnerEmail: alice.Email, OwnerVerified: alice.EmailVerified}}
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Errorf("RecordDueReminders (%v), -want +got:\n%s", err, diff)
	}
	if again, err := s.RecordDueReminders(ctx, []int{14, 3}, now.Add(time.Hour)); err != nil || len(again) != 0 {
		t.Errorf("a second call recorded %v, %v; want nothing", again, err)
	}
}
