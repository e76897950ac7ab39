package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// auditChainLock is the advisory lock key that serialises writers of the
// audit chain ("audit" in ASCII).
const auditChainLock = 0x6175646974

// LockAuditChain takes the audit chain's lock for the rest of the
// transaction and reads its head, ahead of the events AppendAudit will write.
// A transaction whose events wait on slow work (issuing a credential) takes
// it while the work runs, so that its events then cost two quick round trips
// (the clock, the inserts) with no wait for the lock. It does nothing outside
// a transaction, or when the lock is held already.
func (s *Store) LockAuditChain(ctx context.Context) error {
	_, err := s.lockAuditChain(ctx)
	return err
}

// lockAuditChain is LockAuditChain. When it takes the lock it also returns
// the database's clock as it was once the lock was granted; when the lock
// was held already (or outside a transaction) it returns the zero time.
func (s *Store) lockAuditChain(ctx context.Context) (time.Time, error) {
	if s.chain == nil || s.chain.hash != nil {
		return time.Time{}, nil
	}
	// Lock, then read the head and the clock: two statements, so that the
	// read's snapshot is taken after the lock is granted and sees the last
	// writer's commit, and the clock is read after that commit. Sent as one
	// batch, they cost one round trip.
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, auditChainLock)
	b.Queue(`
		SELECT clock_timestamp(), head.hash, head.at
		FROM (SELECT) AS one LEFT JOIN (SELECT hash, at FROM audit_events ORDER BY id DESC LIMIT 1) AS head ON true`)
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
		return time.Time{}, mapErr("audit head", err)
	}
	if hash == nil { // the first event follows the genesis hash
		hash = portal.GenesisHash()
	}
	s.chain.hash, s.chain.at = hash, time.Time{}
	if headAt != nil {
		s.chain.at = *headAt
	}
	return clock, nil
}

// AppendAudit writes events, in order, as the next links of the audit chain:
// it takes the chain's lock for the rest of the transaction (LockAuditChain),
// and inserts each event with prev_hash and hash = SHA-256(prev_hash ||
// event). Called inside InTx, the lock is held until that transaction ends,
// so concurrent transactions cannot fork the chain, and the events commit or
// roll back with the change they record; called outside, it makes a
// transaction of its own.
//
// The events' time is the database's clock, read while the lock is held:
// whatever At the caller set is replaced, so that neither a caller nor an
// application server's clock can date an event, and each event is dated at
// or after the one before it (verification reports one that is not). Should
// the database's clock step back, events take their predecessor's time
// rather than go back in time. Each event's ID, At, PrevHash and Hash are
// filled in; At as stored, in microseconds, which is what is hashed.
func (s *Store) AppendAudit(ctx context.Context, events ...*portal.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if s.chain == nil {
		return s.InTx(ctx, func(tx *Store) error { return tx.AppendAudit(ctx, events...) })
	}
	now, err := s.lockAuditChain(ctx)
	if err != nil {
		return err
	}
	if now.IsZero() { // locked earlier: the clock read then is stale
		if err := s.db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
			return mapErr("audit clock", err)
		}
	}
	at := now.UTC().Truncate(time.Microsecond)
	if at.Before(s.chain.at) {
		at = s.chain.at.UTC()
	}
	prev := s.chain.hash
	inserts := &pgx.Batch{}
	for _, e := range events {
		e.At = at
		hash, err := e.ChainHash(prev)
		if err != nil {
			return err
		}
		details, err := portal.CanonicalDetails(e.Details)
		if err != nil {
			return err
		}
		e.PrevHash, e.Hash = prev, hash
		prev = hash
		inserts.Queue(`
			INSERT INTO audit_events (at, actor_id, actor, action, subject_type, subject_id, cluster_id,
			                          details, ip, user_agent, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING id`,
			e.At, e.ActorID, e.Actor, e.Action, e.SubjectType, e.SubjectID, e.ClusterID,
			details, e.IP, e.UserAgent, e.PrevHash, e.Hash)
	}
	br := s.db.SendBatch(ctx, inserts)
	for _, e := range events {
		if err = br.QueryRow().Scan(&e.ID); err != nil {
			err = mapErr(fmt.Sprintf("append audit %s", e.Action), err)
			break
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = mapErr("append audit", cerr)
	}
	if err != nil {
		s.chain.hash = nil // the transaction is failing; nothing to trust
		return err
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
