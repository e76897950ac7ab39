package store

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// chain reads every audit event in order and reports the first whose hash
// does not follow from its predecessor.
func chain(t *testing.T, s *Store) (n int, broken int64) {
	t.Helper()
	rows, err := s.db.Query(context.Background(), `
		SELECT id, at, actor_id, actor, action, subject_type, subject_id, cluster_id, details, ip, user_agent, prev_hash, hash
		FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	prev := portal.GenesisHash()
	for rows.Next() {
		var e portal.AuditEvent
		if err := rows.Scan(&e.ID, &e.At, &e.ActorID, &e.Actor, &e.Action, &e.SubjectType, &e.SubjectID, &e.ClusterID,
			&e.Details, &e.IP, &e.UserAgent, &e.PrevHash, &e.Hash); err != nil {
			t.Fatal(err)
		}
		n++
		want, err := e.ChainHash(prev)
		if err != nil {
			t.Fatal(err)
		}
		if broken == 0 && (!bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, want)) {
			broken = e.ID
		}
		prev = e.Hash
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n, broken
}

func TestAppendAuditConcurrentWritersKeepOneChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer appends inside a transaction of its own, as a
			// state change with its audit row does.
			errs <- s.InTx(ctx, func(tx *Store) error {
				return tx.AppendAudit(ctx, &portal.AuditEvent{Actor: fmt.Sprintf("writer%d@example.org", i),
					Action: portal.ActionSignedIn, SubjectType: portal.SubjectUser,
					Details: map[string]any{"writer": i, "note": "<&> ünïcode"}})
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n, broken := chain(t, s)
	if n != writers || broken != 0 {
		t.Errorf("%d events, first broken link %d; want %d events and an unbroken chain", n, broken, writers)
	}
}

func TestAppendAuditRollsBackWithItsTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if err := s.AppendAudit(ctx, &portal.AuditEvent{Actor: portal.ActorSystem, Action: portal.ActionClusterCreated}); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.AppendAudit(ctx, &portal.AuditEvent{Actor: portal.ActorSystem, Action: portal.ActionClusterUpdated}); err != nil {
			return err
		}
		return fmt.Errorf("the change failed")
	})
	if err == nil {
		t.Fatal("want the transaction's error")
	}
	if err := s.AppendAudit(ctx, &portal.AuditEvent{Actor: portal.ActorSystem, Action: portal.ActionClusterUpdated}); err != nil {
		t.Fatal(err)
	}
	if n, broken := chain(t, s); n != 2 || broken != 0 {
		t.Errorf("%d events, broken at %d; want 2 and an unbroken chain after a rollback", n, broken)
	}
}

func TestAuditTamperingBreaksTheChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	var ids []int64
	for i := range 3 {
		e := &portal.AuditEvent{Actor: "a@example.org", Action: portal.ActionRequestCreated, Details: map[string]any{"n": i}}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	// As a superuser could: switch the trigger off and rewrite a row.
	_, err := s.db.Exec(ctx, `
		ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete;
		UPDATE audit_events SET details = '{"n": 42}' WHERE id = `+fmt.Sprint(ids[1])+`;
		ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete;`)
	if err != nil {
		t.Fatal(err)
	}
	if _, broken := chain(t, s); broken != ids[1] {
		t.Errorf("first broken link %d, want the rewritten event %d", broken, ids[1])
	}
}

// TestAppendAuditAcrossASavepoint: events appended in a savepoint that rolls
// back leave the chain as it was; the next event links to the last kept one.
func TestAppendAuditAcrossASavepoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.LockAuditChain(ctx); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &portal.AuditEvent{Actor: portal.ActorSystem, Action: portal.ActionClusterCreated}); err != nil {
			return err
		}
		_ = tx.InTx(ctx, func(sp *Store) error {
			if err := sp.AppendAudit(ctx, &portal.AuditEvent{Actor: portal.ActorSystem, Action: portal.ActionClusterUpdated}); err != nil {
				return err
			}
			return fmt.Errorf("the savepoint's change failed")
		})
		return tx.AppendAudit(ctx, &portal.AuditEvent{Actor: portal.ActorSystem, Action: portal.ActionClusterUpdated})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, broken := chain(t, s); n != 2 || broken != 0 {
		t.Errorf("%d events, broken at %d; want 2 and an unbroken chain", n, broken)
	}
}
