package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/issue"
)

// auditChainLock is the advisory lock key that serialises writers of the
// audit chain ("audit" in ASCII).
const auditChainLock = 0x6175646974

// LockAuditChain takes the audit chain's lock for the rest of the
// transaction and reads its head, ahead of the events AppendAudit will write.
// A transaction whose events wait on slow work (issuing a credential) takes
// it while the work runs, so that its events then cost one round trip. It
// does nothing outside a transaction, or when the lock is held already.
func (s *Store) LockAuditChain(ctx context.Context) error {
	if s.chain == nil || s.chain.hash != nil {
		return nil
	}
	// Lock, then read the head: two statements, so that the read's snapshot
	// is taken after the lock is granted and sees the last writer's commit.
	// Sent as one batch, they cost one round trip.
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, auditChainLock)
	b.Queue(`SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`)
	head := issue.GenesisHash()
	br := s.db.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&head)
		if errors.Is(err, pgx.ErrNoRows) { // the first event follows the genesis hash
			head, err = issue.GenesisHash(), nil
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return mapErr("audit head", err)
	}
	s.chain.hash = head
	return nil
}

// AppendAudit writes events, in order, as the next links of the audit chain:
// it takes the chain's lock for the rest of the transaction (LockAuditChain),
// and inserts each event with prev_hash and hash = SHA-256(prev_hash ||
// event). Called inside InTx, the lock is held until that transaction ends,
// so concurrent transactions cannot fork the chain, and the events commit or
// roll back with the change they record; called outside, it makes a
// transaction of its own. An event's zero At is set to now; each event's ID,
// At, PrevHash and Hash are filled in.
func (s *Store) AppendAudit(ctx context.Context, events ...*issue.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if s.chain == nil {
		return s.InTx(ctx, func(tx *Store) error { return tx.AppendAudit(ctx, events...) })
	}
	if err := s.LockAuditChain(ctx); err != nil {
		return err
	}
	prev := s.chain.hash
	now := time.Now()
	inserts := &pgx.Batch{}
	for _, e := range events {
		if e.At.IsZero() {
			e.At = now
		}
		e.At = e.At.UTC().Truncate(time.Microsecond)
		hash, err := e.ChainHash(prev)
		if err != nil {
			return err
		}
		details, err := issue.CanonicalDetails(e.Details)
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
	var err error
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
	s.chain.hash = prev
	return nil
}
