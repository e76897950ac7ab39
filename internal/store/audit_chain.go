package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// auditChainLock is the advisory lock key that serialises writers of the
// audit chain ("audit" in ASCII).
const auditChainLock = 0x6175646974

// LockAuditChain takes the audit chain's lock for the rest of the
// transaction and reads its head, ahead of the events AppendAudit will write.
// The lock is held back to go behind the transaction's next statement, in
// its round trip, and the clock is read with it: a transaction whose events
// follow slow work (issuing a credential) calls it before the work, and the
// statement that stores the work's result takes the lock, so that its events
// then cost no round trip of their own. It does nothing outside a
// transaction, or when the lock is held or held back already.
func (s *Store) LockAuditChain(ctx context.Context) error {
	t, ok := s.db.(*txdb)
	if !ok || s.chain == nil || s.chain.hash != nil || s.chain.heldBy == t {
		return nil
	}
	var (
		clock  time.Time
		hash   []byte
		headAt *time.Time
	)
	s.chain.heldBy = t
	t.holdBehind(`SELECT pg_advisory_xact_lock($1)`, auditChainLock).Exec(func(pgconn.CommandTag) error { return nil })
	t.holdBehind(auditHeadSQL).QueryRow(func(row pgx.Row) error {
		s.chain.heldBy = nil
		if err := row.Scan(&clock, &hash, &headAt); err != nil {
			return mapErr("audit head", err)
		}
		s.chain.head(t, clock, hash, headAt)
		return nil
	})
	return nil
}

// auditHeadSQL reads the database's clock and the chain's head. Sent after
// the lock in the same batch, its snapshot is taken once the lock is
// granted, so it sees the last writer's commit, and the clock is read after
// that commit.
const auditHeadSQL = `
	SELECT clock_timestamp(), head.hash, head.at
	FROM (SELECT) AS one LEFT JOIN (SELECT hash, at FROM audit_events ORDER BY id DESC LIMIT 1) AS head ON true`

// head records the chain's head and the clock as read, under the lock, by
// transaction t's latest round trip.
func (c *chainHead) head(t *txdb, clock time.Time, hash []byte, headAt *time.Time) {
	if hash == nil { // the first event follows the genesis hash
		hash = portal.GenesisHash()
	}
	c.hash, c.at = hash, time.Time{}
	if headAt != nil {
		c.at = *headAt
	}
	c.clock, c.db, c.trip = clock, t, t.root().trips
}

// lockAuditChain takes the chain's lock now, in one round trip with what
// the transaction held back, unless it is held already.
func (s *Store) lockAuditChain(ctx context.Context, t *txdb) error {
	if s.chain.hash != nil {
		return nil
	}
	if s.chain.heldBy == t { // held back: send it, with what goes before it
		if err := t.flush(ctx); err != nil {
			return err
		}
		if s.chain.hash == nil {
			return fmt.Errorf("store: audit head: the chain's lock was sent but not read")
		}
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, auditChainLock)
	b.Queue(auditHeadSQL)
	var (
		clock  time.Time
		hash   []byte
		headAt *time.Time
	)
	br := s.db.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&clock, &hash, &headAt)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return mapErr("audit head", err)
	}
	s.chain.head(t, clock, hash, headAt)
	return nil
}

// AppendAudit writes events, in order, as the next links of the audit chain:
// it takes the chain's lock for the rest of the transaction (LockAuditChain),
// and inserts each event with prev_hash and hash = SHA-256(prev_hash ||
// event). Called inside InTx, the lock is held until that transaction ends,
// so concurrent transactions cannot fork the chain, and the events commit or
// roll back with the change they record; called outside, it makes a
// transaction of its own. Inside a transaction the inserts are held back to
// go with its next statement or its commit, which then fill in the events'
// IDs.
//
// The events' time is the database's clock, read while the lock is held, by
// the transaction's latest statement: whatever At the caller set is
// replaced, so that neither a caller nor an application server's clock can
// date an event, and each event is dated at or after the one before it
// (verification reports one that is not). When a statement has run since
// the lock's, the clock is read again. Should the database's clock step
// back, events take their predecessor's time rather than go back in time.
// Each event's At, PrevHash and Hash are filled in.
func (s *Store) AppendAudit(ctx context.Context, events ...*portal.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	t, ok := s.db.(*txdb)
	if !ok || s.chain == nil {
		return s.InTx(ctx, func(tx *Store) error { return tx.AppendAudit(ctx, events...) })
	}
	if err := s.lockAuditChain(ctx, t); err != nil {
		return err
	}
	now, fresh := s.chain.freshClock(t)
	if !fresh { // statements ran since the lock's: its clock is stale
		if err := s.db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
			return mapErr("audit clock", err)
		}
		s.chain.clock, s.chain.db, s.chain.trip = now, t, t.root().trips
	}
	at := now.UTC().Truncate(time.Microsecond)
	if at.Before(s.chain.at) {
		at = s.chain.at.UTC()
	}
	prev := s.chain.hash
	for _, e := range events {
		e.At = at
		hash, err := e.ChainHash(prev)
		if err != nil {
			s.chain.hash = nil // the transaction is failing; nothing to trust
			return err
		}
		details, err := portal.CanonicalDetails(e.Details)
		if err != nil {
			s.chain.hash = nil
			return err
		}
		e.PrevHash, e.Hash = prev, hash
		prev = hash
		t.holdAhead(`
			INSERT INTO audit_events (at, actor_id, actor, action, subject_type, subject_id, cluster_id,
			                          details, ip, user_agent, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING id`,
			e.At, e.ActorID, e.Actor, e.Action, e.SubjectType, e.SubjectID, e.ClusterID,
			details, e.IP, e.UserAgent, e.PrevHash, e.Hash,
		).QueryRow(func(row pgx.Row) error {
			if err := row.Scan(&e.ID); err != nil {
				s.chain.hash = nil
				return mapErr(fmt.Sprintf("append audit %s", e.Action), err)
			}
			return nil
		})
	}
	s.chain.hash, s.chain.at = prev, at
	return nil
}

// verifyLock is the advisory lock key held while the chain is walked
// ("auditv" in ASCII), so that one walk at a time loads the database.
const verifyLock = 0x617564697476

// verifyProgressEvery is how many events pass between calls of VerifyAudit's
// progress function.
const verifyProgressEvery = 100_000

// VerifyAudit walks the audit chain in id order from the event after sinceID
// (from the first event when 0; the hash and time of event sinceID are
// trusted as the starting point), recomputes each event's hash with
// portal.AuditEvent.ChainHash, and checks that each prev_hash is the hash of
// the event before and that no event is older than it (portal.CheckLink). It stops at
// the first event that does not check out and names it in the result's
// Broken. Rows are read as they arrive, so memory stays the same for any
// length of chain; progress, when not nil, is called with the count so far
// every 100,000 events. The result is not recorded: see
// RecordAuditVerification. Returns portal.ErrNotFound when event sinceID does
// not exist, and an Error of portal.KindConflict when another walk is
// running.
func (s *Store) VerifyAudit(ctx context.Context, sinceID int64, progress func(n int64)) (*portal.AuditVerification, error) {
	start := time.Now()
	v := &portal.AuditVerification{SinceID: sinceID}
	err := s.InTx(ctx, func(tx *Store) error {
		// One snapshot for the starting hash and the walk.
		if _, err := tx.db.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`); err != nil {
			return mapErr("audit verify", err)
		}
		var locked bool
		if err := tx.db.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, verifyLock).Scan(&locked); err != nil {
			return mapErr("audit verify lock", err)
		}
		if !locked {
			return portal.Errorf(portal.KindConflict, "A verification of the audit chain is running already; its result will show here when it ends.")
		}
		prev, prevAt := portal.GenesisHash(), time.Time{}
		if sinceID > 0 {
			if err := tx.db.QueryRow(ctx, `SELECT hash, at FROM audit_events WHERE id = $1`, sinceID).Scan(&prev, &prevAt); err != nil {
				return mapErr(fmt.Sprintf("audit event %d to verify from", sinceID), err)
			}
			v.HeadID, v.HeadHash = sinceID, prev
		}
		rows, err := tx.db.Query(ctx, `
			SELECT id, at, actor_id, actor, action, subject_type, subject_id, cluster_id, details, ip, user_agent, prev_hash, hash
			FROM audit_events WHERE id > $1 ORDER BY id`, sinceID)
		if err != nil {
			return mapErr("audit verify", err)
		}
		defer rows.Close()
		var (
			e       portal.AuditEvent
			details []byte
		)
		for rows.Next() {
			if err := rows.Scan(&e.ID, &e.At, &e.ActorID, &e.Actor, &e.Action, &e.SubjectType, &e.SubjectID, &e.ClusterID,
				&details, &e.IP, &e.UserAgent, &e.PrevHash, &e.Hash); err != nil {
				return mapErr("audit verify", err)
			}
			v.Events++
			if progress != nil && v.Events%verifyProgressEvery == 0 {
				progress(v.Events)
			}
			if problem := portal.CheckLink(&e, details, portal.ChainLink{ID: v.HeadID, Hash: prev, At: prevAt}); problem != "" {
				v.Broken = &portal.AuditBreak{ID: e.ID, At: e.At, Problem: problem}
				return nil
			}
			prev, prevAt = e.Hash, e.At
			v.HeadID, v.HeadHash = e.ID, e.Hash
		}
		return mapErr("audit verify", rows.Err())
	})
	if err != nil {
		return nil, err
	}
	v.Took = time.Since(start)
	return v, nil
}

// RecordAuditVerification stores the outcome of a walk, for the audit page to
// show, and sets v.ID and v.VerifiedAt.
func (s *Store) RecordAuditVerification(ctx context.Context, v *portal.AuditVerification) error {
	var brokenID *int64
	var brokenAt *time.Time
	problem := ""
	if v.Broken != nil {
		brokenID, brokenAt, problem = &v.Broken.ID, &v.Broken.At, v.Broken.Problem
	}
	err := s.db.QueryRow(ctx, `
		INSERT INTO audit_verifications (verified_by, since_id, events, head_id, head_hash, took, ok, broken_id, broken_at, problem)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		RETURNING id, verified_at`,
		v.VerifiedBy, v.SinceID, v.Events, v.HeadID, v.HeadHash, v.Took, v.OK(), brokenID, brokenAt, problem,
	).Scan(&v.ID, &v.VerifiedAt)
	return mapErr("record audit verification", err)
}

// LastAuditVerification returns the most recent recorded walk of the chain.
// Returns portal.ErrNotFound when the chain was never verified.
func (s *Store) LastAuditVerification(ctx context.Context) (*portal.AuditVerification, error) {
	var (
		v        portal.AuditVerification
		brokenID *int64
		brokenAt *time.Time
		problem  string
	)
	err := s.db.QueryRow(ctx, `
		SELECT id, verified_at, verified_by, since_id, events, head_id, head_hash, took, broken_id, broken_at, problem
		FROM audit_verifications ORDER BY id DESC LIMIT 1`,
	).Scan(&v.ID, &v.VerifiedAt, &v.VerifiedBy, &v.SinceID, &v.Events, &v.HeadID, &v.HeadHash, &v.Took,
		&brokenID, &brokenAt, &problem)
	if err != nil {
		return nil, mapErr("last audit verification", err)
	}
	if brokenID != nil {
		v.Broken = &portal.AuditBreak{ID: *brokenID, Problem: problem}
		if brokenAt != nil {
			v.Broken.At = *brokenAt
		}
	}
	return &v, nil
}
