package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// chain reads every audit event in order and reports the first whose hash
// does not follow from its predecessor.
func chain(t *testing.T, s *Store) (n int, broken int64) {
	t.Helper()
	rows, err := s.db.Query(t.Context(), `
		SELECT id, at, actor_id, actor, action, subject_type, subject_id, cluster_id, details, ip, user_agent, prev_hash, hash
		FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	prev := portal.GenesisHash()
	for rows.Next() {
		var e portal.AuditEvent
		var details []byte
		if err := rows.Scan(&e.ID, &e.At, &e.ActorID, &e.Actor, &e.Action, &e.SubjectType, &e.SubjectID, &e.ClusterID,
			&details, &e.IP, &e.UserAgent, &e.PrevHash, &e.Hash); err != nil {
			t.Fatal(err)
		}
		// Numbers keep their digits, as they were hashed.
		if e.Details, err = portal.DecodeDetails(details); err != nil {
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

// appendEvents appends n events by actor and returns them.
func appendEvents(t *testing.T, s *Store, n int, actor string) []*portal.AuditEvent {
	t.Helper()
	var out []*portal.AuditEvent
	for i := range n {
		e := &portal.AuditEvent{Actor: actor, Action: portal.ActionRequestCreated, SubjectType: portal.SubjectRequest,
			Details: map[string]any{"n": i, "big": int64(1) << 60, "note": "<&> ünïcode"}}
		if err := s.AppendAudit(t.Context(), e); err != nil {
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
	ctx := t.Context()
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.db.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete`); err != nil {
			return err
		}
		if _, err := tx.db.Exec(ctx, sql, args...); err != nil {
			return err
		}
		_, err := tx.db.Exec(ctx, `ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete`)
		return err
	})
	if err != nil {
		t.Fatalf("tampering: %v", err)
	}
}

func TestAppendAuditConcurrentWritersKeepOneChain(t *testing.T) {
	ctx, s := start(t)
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
	ctx, s := start(t)
	if err := s.AppendAudit(ctx, systemEvent(portal.ActionClusterCreated)); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.AppendAudit(ctx, systemEvent(portal.ActionClusterUpdated)); err != nil {
			return err
		}
		return fmt.Errorf("the change failed")
	})
	if err == nil {
		t.Fatal("want the transaction's error")
	}
	if err := s.AppendAudit(ctx, systemEvent(portal.ActionClusterUpdated)); err != nil {
		t.Fatal(err)
	}
	if n, broken := chain(t, s); n != 2 || broken != 0 {
		t.Errorf("%d events, broken at %d; want 2 and an unbroken chain after a rollback", n, broken)
	}
}

func TestAuditTamperingBreaksTheChain(t *testing.T) {
	_, s := start(t)
	ev := appendEvents(t, s, 3, "a@example.org")
	tamper(t, s, `UPDATE audit_events SET details = '{"n": 42}' WHERE id = $1`, ev[1].ID)
	if _, broken := chain(t, s); broken != ev[1].ID {
		t.Errorf("first broken link %d, want the rewritten event %d", broken, ev[1].ID)
	}
}

// TestAppendAuditAcrossASavepoint: events appended in a savepoint that rolls
// back leave the chain as it was; the next event links to the last kept one.
func TestAppendAuditAcrossASavepoint(t *testing.T) {
	ctx, s := start(t)
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.LockAuditChain(ctx); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, systemEvent(portal.ActionClusterCreated)); err != nil {
			return err
		}
		_ = tx.InTx(ctx, func(sp *Store) error {
			if err := sp.AppendAudit(ctx, systemEvent(portal.ActionClusterUpdated)); err != nil {
				return err
			}
			return fmt.Errorf("the savepoint's change failed")
		})
		return tx.AppendAudit(ctx, systemEvent(portal.ActionClusterUpdated))
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, broken := chain(t, s); n != 2 || broken != 0 {
		t.Errorf("%d events, broken at %d; want 2 and an unbroken chain", n, broken)
	}
}

// TestAuditEventsAreAppendOnly: even the table's owner cannot change or remove
// an event while the trigger is on.
func TestAuditEventsAreAppendOnly(t *testing.T) {
	ctx, s := start(t)
	_, err := s.db.Exec(ctx, `INSERT INTO audit_events (at, actor, action, prev_hash, hash) VALUES (now(), 'system', 'test', '\x00', '\x01')`)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`UPDATE audit_events SET action = 'forged'`, `DELETE FROM audit_events`, `TRUNCATE audit_events`} {
		if _, err := s.db.Exec(ctx, stmt); err == nil {
			t.Errorf("%s succeeded on the append-only audit table", stmt)
		}
	}
}

func TestVerifyAudit(t *testing.T) {
	t.Parallel()
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
			ctx, s := start(t)
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
	ctx, s := start(t)
	v, err := s.VerifyAudit(ctx, 0, nil)
	if err != nil || !v.OK() || v.Events != 0 || v.HeadID != 0 {
		t.Errorf("empty chain: %+v, %v; want an intact chain of nothing", v, err)
	}
	if _, err := s.VerifyAudit(ctx, 999, nil); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("verify from a missing event: %v, want ErrNotFound", err)
	}
}

func TestVerifyAuditOneAtATime(t *testing.T) {
	ctx, s := start(t)
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
	ctx, s := start(t)
	if _, err := s.LastAuditVerification(ctx); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("before any walk: %v, want ErrNotFound", err)
	}
	// walk verifies the whole chain as by and records the outcome.
	walk := func(by string) *portal.AuditVerification {
		t.Helper()
		v, err := s.VerifyAudit(ctx, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		v.VerifiedBy = by
		if err := s.RecordAuditVerification(ctx, v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// An interval keeps microseconds.
	took := cmp.Comparer(func(a, b time.Duration) bool { return (a - b).Abs() < time.Microsecond })

	ev := appendEvents(t, s, 3, "a@example.org")
	v := walk("portal audit verify")
	tamper(t, s, `UPDATE audit_events SET ip = '10.0.0.1' WHERE id = $1`, ev[1].ID)
	broken := walk("sam@2i2c.org")

	last, err := s.LastAuditVerification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(broken, last, took); diff != "" {
		t.Errorf("LastAuditVerification (-recorded +read):\n%s", diff)
	}
	// The first walk is kept beside the latest; read it back by hand.
	var first portal.AuditVerification
	err = s.db.QueryRow(ctx, `SELECT id, events, head_id, head_hash, took, verified_by FROM audit_verifications WHERE id = $1`, v.ID).
		Scan(&first.ID, &first.Events, &first.HeadID, &first.HeadHash, &first.Took, &first.VerifiedBy)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, &first, took, cmpopts.IgnoreFields(portal.AuditVerification{}, "VerifiedAt", "SinceID")); diff != "" {
		t.Errorf("first walk (-recorded +read):\n%s", diff)
	}
	if last.OK() || last.Broken.ID != ev[1].ID || !last.Broken.At.Equal(ev[1].At) || !strings.Contains(last.Broken.Problem, "hash mismatch") {
		t.Errorf("last verification %+v, broken %+v; want the break at %d", last, last.Broken, ev[1].ID)
	}
}
