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

	"github.com/2i2c-org/credential-portal/internal/pgtest"
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

// appendDated writes e with the time it carries, chained after the head as
// AppendAudit would chain it, straight into the table: AppendAudit dates every
// event by the database's clock, so an event of another time is written only
// by someone who computes its hash themselves, as an import of old events or
// a forger with the table's INSERT grant would.
func appendDated(t *testing.T, s *Store, e *portal.AuditEvent) {
	t.Helper()
	ctx := t.Context()
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.lockAuditChain(ctx, tx.db.(*txdb)); err != nil { // now: the head is read here
			return err
		}
		e.At = e.At.UTC().Truncate(time.Microsecond)
		hash, err := e.ChainHash(tx.chain.hash)
		if err != nil {
			return err
		}
		details, err := portal.CanonicalDetails(e.Details)
		if err != nil {
			return err
		}
		e.PrevHash, e.Hash = tx.chain.hash, hash
		return tx.db.QueryRow(ctx, `
			INSERT INTO audit_events (at, actor_id, actor, action, subject_type, subject_id, cluster_id,
			                          details, ip, user_agent, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING id`,
			e.At, e.ActorID, e.Actor, e.Action, e.SubjectType, e.SubjectID, e.ClusterID,
			details, e.IP, e.UserAgent, e.PrevHash, e.Hash).Scan(&e.ID)
	})
	if err != nil {
		t.Fatalf("writing a dated event: %v", err)
	}
}

// dbClock is the database's clock now.
func dbClock(t *testing.T, s *Store) time.Time {
	t.Helper()
	var now time.Time
	if err := s.db.QueryRow(t.Context(), `SELECT clock_timestamp()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

// TestAppendAuditDatesEventsByTheDatabaseClock: whatever time the caller
// puts on an event, back-dated or ahead, it is stored at the database's
// clock as it was while the chain was locked, and that stored time (in
// microseconds) is what the hash covers. An event appended long after the
// transaction asked for the lock gets the time of its append, not of the
// request.
func TestAppendAuditDatesEventsByTheDatabaseClock(t *testing.T) {
	ctx, s := start(t)
	for _, claimed := range []time.Time{
		time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now().Add(365 * 24 * time.Hour),
		time.Now().Add(123456789 * time.Nanosecond), // a time with nanoseconds
	} {
		before := dbClock(t, s)
		e := systemEvent(portal.ActionClusterUpdated)
		e.At = claimed
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		after := dbClock(t, s)
		if e.At.Before(before) || e.At.After(after) || e.At.Nanosecond()%1000 != 0 {
			t.Errorf("an event claimed for %s was dated %s; want the database's clock, between %s and %s, in microseconds",
				claimed, e.At, before, after)
		}
		var stored time.Time
		if err := s.db.QueryRow(ctx, `SELECT at FROM audit_events WHERE id = $1`, e.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if !stored.Equal(e.At) {
			t.Errorf("stored at %s, the event says %s", stored, e.At)
		}
	}

	// The lock rides behind the transaction's next statement, and the clock
	// is read with it: an event that follows slow work is dated after the
	// work, however long before it the lock was asked for. And when a
	// statement ran since, the clock is read again at the append.
	var slowEnd, appended time.Time
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.LockAuditChain(ctx); err != nil {
			return err
		}
		// The slow work the lock was asked for ahead of.
		if err := tx.db.QueryRow(ctx, `SELECT clock_timestamp() FROM pg_sleep(0.05)`).Scan(&slowEnd); err != nil {
			return err
		}
		e := systemEvent(portal.ActionCredentialIssued)
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
		if e.At.Before(slowEnd) {
			t.Errorf("an event appended after slow work that ended at %s is dated %s", slowEnd, e.At)
		}
		if _, err := tx.db.Exec(ctx, `SELECT pg_sleep(0.05)`); err != nil {
			return err
		}
		appended = dbClock(t, s)
		e = systemEvent(portal.ActionCredentialIssued)
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
		if e.At.Before(appended) {
			t.Errorf("an event appended at %s, after a statement that followed the lock, is dated %s", appended, e.At)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, broken := chain(t, s); n != 5 || broken != 0 {
		t.Errorf("%d events, broken at %d; want 5 and an unbroken chain", n, broken)
	}
	if v, err := s.VerifyAudit(ctx, 0, nil); err != nil || !v.OK() {
		t.Errorf("VerifyAudit = %+v, %v; want the chain to check out", v, err)
	}
}

// TestAppendAuditNeverGoesBackInTime: should the head be dated after the
// database's clock (the clock stepped back), the next event takes the
// head's time instead of an earlier one, so verification still passes.
func TestAppendAuditNeverGoesBackInTime(t *testing.T) {
	ctx, s := start(t)
	ahead := &portal.AuditEvent{Actor: portal.ActorSystem, Action: portal.ActionClusterCreated, At: time.Now().Add(time.Hour)}
	appendDated(t, s, ahead)
	next := systemEvent(portal.ActionClusterUpdated)
	if err := s.AppendAudit(ctx, next); err != nil {
		t.Fatal(err)
	}
	if !next.At.Equal(ahead.At) {
		t.Errorf("after a head dated %s, the next event is dated %s; want the head's time", ahead.At, next.At)
	}
	if v, err := s.VerifyAudit(ctx, 0, nil); err != nil || !v.OK() {
		t.Errorf("VerifyAudit = %+v, %v; want the chain to check out", v, err)
	}
}

// TestVerifyAuditReportsABackDatedEvent: an event whose hash is right but
// whose time is before its predecessor's, as someone who can insert rows
// and compute hashes would write it, is reported, from the start and from
// an event before it; the next event, dated after it, is not.
func TestVerifyAuditReportsABackDatedEvent(t *testing.T) {
	ctx, s := start(t)
	ev := appendEvents(t, s, 3, "alice@example.org")
	forged := &portal.AuditEvent{Actor: "sam@2i2c.org", Action: portal.ActionRequestApproved, SubjectType: portal.SubjectRequest,
		At: ev[2].At.Add(-time.Hour), Details: map[string]any{"note": "approved last week, honest"}}
	appendDated(t, s, forged)
	after := appendEvents(t, s, 1, "alice@example.org")[0]
	if n, broken := chain(t, s); n != 5 || broken != 0 {
		t.Fatalf("%d events, hashes broken at %d: the forged event must link and hash correctly", n, broken)
	}
	for _, since := range []int64{0, ev[1].ID} {
		v, err := s.VerifyAudit(ctx, since, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.OK() || v.Broken.ID != forged.ID || !strings.Contains(v.Broken.Problem, "older than its predecessor") ||
			!strings.Contains(v.Broken.Problem, fmt.Sprintf("event %d", ev[2].ID)) || v.HeadID != ev[2].ID {
			t.Errorf("from %d: %+v, broken %+v; want the back-dated event %d named, older than event %d", since, v, v.Broken, forged.ID, ev[2].ID)
		}
	}
	// Trusting the forged event, what follows it checks out.
	if v, err := s.VerifyAudit(ctx, forged.ID, nil); err != nil || !v.OK() || v.HeadID != after.ID {
		t.Errorf("from the forged event: %+v, %v", v, err)
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

// BenchmarkAppendAudit times one event appended in a transaction of its
// own, as most actions write theirs ("own"), and in a transaction that
// locked the chain before slow work ("prelocked"), which reads the clock
// again when it appends.
func BenchmarkAppendAudit(b *testing.B) {
	ctx := b.Context()
	s := New(pgtest.New(b))
	event := func() *portal.AuditEvent {
		return &portal.AuditEvent{Actor: "alice@example.org", Action: portal.ActionCredentialDownloaded,
			SubjectType: portal.SubjectCredential, Details: map[string]any{"download": 1}, IP: "192.0.2.1", UserAgent: "bench"}
	}
	b.Run("own", func(b *testing.B) {
		for b.Loop() {
			if err := s.InTx(ctx, func(tx *Store) error { return tx.AppendAudit(ctx, event()) }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prelocked", func(b *testing.B) {
		for b.Loop() {
			err := s.InTx(ctx, func(tx *Store) error {
				if err := tx.LockAuditChain(ctx); err != nil {
					return err
				}
				return tx.AppendAudit(ctx, event())
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
