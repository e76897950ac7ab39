package store

import (
	"context"
	"fmt"
	"time"

	"github.com/2i2c-org/credential-portal/internal/issue"
)

// auditChainLock is the advisory lock key that serialises writers of the
// audit chain ("audit" in ASCII).
const auditChainLock = 0x6175646974

// AppendAudit writes e as the next link of the audit chain: it takes the
// chain's lock for the rest of the transaction, reads the last hash, and
// inserts e with prev_hash and hash = SHA-256(prev_hash || e). Called inside
// InTx, the lock is held until that transaction ends, so concurrent
// transactions cannot fork the chain, and the event commits or rolls back
// with the change it records. e.At is set to now when zero; e's ID, At,
// PrevHash and Hash are filled in.
func (s *Store) AppendAudit(ctx context.Context, e *issue.AuditEvent) error {
	return s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.db.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditChainLock); err != nil {
			return mapErr("audit lock", err)
		}
		prev := issue.GenesisHash
		err := tx.db.QueryRow(ctx, `SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&prev)
		if err != nil && !isNotFound(err) { // no rows: the first event follows the genesis hash
			return mapErr("audit head", err)
		}
		if e.At.IsZero() {
			e.At = time.Now()
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
		err = tx.db.QueryRow(ctx, `
			INSERT INTO audit_events (at, actor_id, actor, action, subject_type, subject_id, cluster_id,
			                          details, ip, user_agent, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING id`,
			e.At, e.ActorID, e.Actor, e.Action, e.SubjectType, e.SubjectID, e.ClusterID,
			details, e.IP, e.UserAgent, e.PrevHash, e.Hash,
		).Scan(&e.ID)
		if err != nil {
			return mapErr(fmt.Sprintf("append audit %s", e.Action), err)
		}
		return nil
	})
}
