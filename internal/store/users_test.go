package store

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

func TestUpsertUser(t *testing.T) {
	ctx, s := start(t)
	u := &portal.User{Issuer: "https://idp.example", Subject: "123", Email: "old@example.org", Name: "Old", Role: portal.RoleCustomer}
	if err := s.UpsertUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	again := &portal.User{Issuer: "https://idp.example", Subject: "123", Email: "new@example.org", EmailVerified: true,
		Name: "New", Groups: []string{"2i2c-staff"}, Role: portal.RoleStaff}
	if err := s.UpsertUser(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.ID != u.ID {
		t.Fatalf("same (issuer, subject) got a new user: %d vs %d", again.ID, u.ID)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(again, got); diff != "" || got.LastLoginAt == nil {
		t.Errorf("user not refreshed (-upserted +read):\n%s\nlast login %v", diff, got.LastLoginAt)
	}
	other := &portal.User{Issuer: "https://other.example", Subject: "123", Role: portal.RoleCustomer}
	if err := s.UpsertUser(ctx, other); err != nil || other.ID == u.ID {
		t.Errorf("same subject at another issuer must be another user: id %d, err %v", other.ID, err)
	}
	if _, err := s.UserByID(ctx, 987654); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("UserByID(missing) = %v, want ErrNotFound", err)
	}
}
