package store

import (
	"errors"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TestSchemaConstraints checks the rules the database itself enforces, through
// the store's one error mapper.
func TestSchemaConstraints(t *testing.T) {
	ctx, s := start(t)
	c := newCluster(t, s, "x")
	alice := &portal.User{Issuer: "i", Subject: "alice", Role: portal.RoleCustomer}
	if err := s.UpsertUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	// In order: the first pending request makes the second a duplicate.
	tests := []struct {
		name      string
		status    string
		decidedBy any
		wantErr   error
	}{
		{"a pending request", "pending", nil, nil},
		{"a second pending request for one (user, cluster)", "pending", nil, portal.ErrConflict},
		{"a self-approved request", "approved", alice.ID, portal.ErrInvalid},
		{"an unknown status", "granted", nil, portal.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.db.Exec(ctx, `
				INSERT INTO requests (user_id, cluster_id, public_key, key_type, key_fingerprint, justification, status, decided_by, decided_at)
				VALUES ($1, $2, 'age1x', 'age-x25519', 'fp', 'a good reason here', $3, $4,
				        CASE WHEN $3 = 'pending' THEN NULL ELSE now() END)`,
				alice.ID, c.ID, tt.status, tt.decidedBy)
			if err := mapErr("insert request", err); !errors.Is(err, tt.wantErr) {
				t.Errorf("insert = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestInTxRollsBack(t *testing.T) {
	ctx, s := start(t)
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.CreateCluster(ctx, demoCluster("rolled-back")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	if _, err := s.ClusterByName(ctx, "rolled-back"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("a rolled-back cluster exists: %v", err)
	}
	if err := s.InTx(ctx, func(tx *Store) error { return tx.CreateCluster(ctx, demoCluster("kept")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClusterByName(ctx, "kept"); err != nil {
		t.Errorf("a committed cluster is missing: %v", err)
	}
}
