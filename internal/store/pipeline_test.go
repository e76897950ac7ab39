package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// tracedStore is a store on a fresh database whose round trips trips counts.
func tracedStore(t *testing.T) (context.Context, *Store, *pgtest.Trips) {
	t.Helper()
	t.Parallel()
	trips := &pgtest.Trips{}
	return t.Context(), New(pgtest.NewTraced(t, trips)), trips
}

// TestHeldBackWritesRideWithTheNextStatement: a decision as staff make it
// (lock, decide, audit, message, read back, commit) goes in four round
// trips, not eight: the BEGIN rides with the lock, the decision with the
// chain's lock, the events and the message with the read. The read sees
// every write before it; everything is committed, and the events carry the
// IDs their inserts returned.
func TestHeldBackWritesRideWithTheNextStatement(t *testing.T) {
	ctx, s, trips := tracedStore(t)
	staff, alice := people(t, s)
	c := newCluster(t, s, "awi-ciroh")
	r := newRequest(t, s, alice, c)

	var (
		read *portal.Request
		e    = &portal.AuditEvent{ActorID: &staff.ID, Actor: staff.Email, Action: portal.ActionRequestDenied,
			SubjectType: portal.SubjectRequest, SubjectID: &r.ID}
		m = &portal.Message{Event: portal.ActionRequestDenied, Audience: portal.AudienceCustomer, Channel: portal.ChannelNone,
			Recipient: alice.Email, Subject: "Denied", Text: "No.", UserID: &alice.ID}
	)
	before := trips.N()
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.LockRequest(ctx, r.ID); err != nil {
			return err
		}
		if err := tx.DecideRequest(ctx, r.ID, portal.StatusDenied, staff.ID, "Not this quarter."); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
		if err := tx.QueueMessages(ctx, m); err != nil {
			return err
		}
		var err error
		read, err = tx.RequestByID(ctx, r.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := trips.N() - before; got != 4 {
		t.Errorf("a decision took %d round trips; want 4 (lock, decide with the chain's lock, writes with the read, commit)", got)
	}
	if read.Status != portal.StatusDenied || read.DecisionNote != "Not this quarter." {
		t.Errorf("read in the transaction after the decision: %s, %q; want it denied with its note", read.Status, read.DecisionNote)
	}
	if e.ID == 0 || m.ID == 0 {
		t.Errorf("event ID %d, message ID %d: the held-back inserts' IDs were not filled in", e.ID, m.ID)
	}
	var events, messages int
	if err := s.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_events WHERE id = $1), (SELECT count(*) FROM messages WHERE id = $2)`,
		e.ID, m.ID).Scan(&events, &messages); err != nil {
		t.Fatal(err)
	}
	if events != 1 || messages != 1 {
		t.Errorf("after commit: %d events, %d messages with those IDs; want 1 and 1", events, messages)
	}
	if n, broken := chain(t, s); n != 1 || broken != 0 {
		t.Errorf("%d events, broken at %d; want 1 and an unbroken chain", n, broken)
	}
}

// TestAHeldBackWriteThatFailsFailsItsTransaction: a decision on a request
// that does not exist is refused with the statement it rode with, and the
// refusal sticks: the same statement tried again is refused, nothing the
// transaction wrote is committed, and InTx returns the decision's kind of
// error even when the function swallowed it.
func TestAHeldBackWriteThatFailsFailsItsTransaction(t *testing.T) {
	ctx, s, _ := tracedStore(t)
	staff, alice := people(t, s)
	c := newCluster(t, s, "awi-ciroh")
	r := newRequest(t, s, alice, c)
	const missing = 999999

	var first, again error
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.DecideRequest(ctx, r.ID, portal.StatusDenied, staff.ID, "Denied, then undone."); err != nil {
			return err
		}
		if err := tx.DecideRequest(ctx, missing, portal.StatusDenied, staff.ID, "No such request."); err != nil {
			return err
		}
		_, first = tx.ClusterByID(ctx, c.ID)
		_, again = tx.ClusterByID(ctx, c.ID)
		return nil // as a careless caller might
	})
	if !errors.Is(first, portal.ErrNotFound) || !errors.Is(again, portal.ErrNotFound) {
		t.Errorf("the statements after a failed held-back decision: %v, then %v; want portal.ErrNotFound from both", first, again)
	}
	if !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("InTx = %v; want the held-back decision's portal.ErrNotFound", err)
	}
	got, err := s.RequestByID(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != portal.StatusPending {
		t.Errorf("request is %s after its transaction failed; want it still pending", got.Status)
	}
}

// TestATransactionThatRunsNothingCostsNothing: no BEGIN, no COMMIT.
func TestATransactionThatRunsNothingCostsNothing(t *testing.T) {
	ctx, s, trips := tracedStore(t)
	before := trips.N()
	if err := s.InTx(ctx, func(*Store) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := trips.N() - before; got != 0 {
		t.Errorf("an empty transaction made %d round trips; want none", got)
	}
}

// TestTheChainLockRidesBehindTheNextStatement: asked for ahead of slow work,
// the audit chain's lock goes behind the statement after the work, so a
// concurrent writer of the chain is not kept waiting during the work; the
// event appended then needs no round trip of its own.
func TestTheChainLockRidesBehindTheNextStatement(t *testing.T) {
	ctx, s, trips := tracedStore(t)
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.db.Exec(ctx, `SELECT 1`); err != nil { // the transaction has begun
			return err
		}
		if err := tx.LockAuditChain(ctx); err != nil {
			return err
		}
		// Slow work: another transaction writes to the chain meanwhile.
		done := make(chan error, 1)
		go func() { done <- s.AppendAudit(ctx, systemEvent(portal.ActionClusterCreated)) }()
		select {
		case err := <-done:
			if err != nil {
				return err
			}
		case <-time.After(5 * time.Second):
			t.Error("another writer waited on a chain lock that was only asked for")
			return nil
		}
		var one int
		before := trips.N()
		if err := tx.db.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil { // stores the work's result
			return err
		}
		if err := tx.AppendAudit(ctx, systemEvent(portal.ActionCredentialIssued)); err != nil {
			return err
		}
		if got := trips.N() - before; got != 1 {
			t.Errorf("the statement after the work and the append took %d round trips; want 1", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, broken := chain(t, s); n != 2 || broken != 0 {
		t.Errorf("%d events, broken at %d; want 2 and an unbroken chain", n, broken)
	}
}

// TestTheCommitCarriesWhatIsHeldBack: a transaction whose last writes are
// held back sends them with its COMMIT, in one round trip: an audit event
// costs two trips (the BEGIN with the chain's lock, the insert with the
// COMMIT). A held-back write whose answer is checked (a decision) goes
// before the COMMIT, not with it, since PostgreSQL would commit whatever the
// check said: a decision on a request that does not exist fails the
// transaction, and the event written with it is not kept.
func TestTheCommitCarriesWhatIsHeldBack(t *testing.T) {
	ctx, s, trips := tracedStore(t)
	staff, _ := people(t, s)

	before := trips.N()
	if err := s.InTx(ctx, func(tx *Store) error { return tx.AppendAudit(ctx, systemEvent(portal.ActionClusterCreated)) }); err != nil {
		t.Fatal(err)
	}
	if got := trips.N() - before; got != 2 {
		t.Errorf("an audit event took %d round trips; want 2 (the BEGIN with the chain's lock, the insert with the COMMIT)", got)
	}

	const missing = 999999
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.AppendAudit(ctx, systemEvent(portal.ActionRequestDenied)); err != nil {
			return err
		}
		return tx.DecideRequest(ctx, missing, portal.StatusDenied, staff.ID, "No such request.")
	})
	if !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("InTx = %v; want the decision's portal.ErrNotFound", err)
	}
	if n, broken := chain(t, s); n != 1 || broken != 0 {
		t.Errorf("%d events, broken at %d; want only the first, and an unbroken chain", n, broken)
	}
}
