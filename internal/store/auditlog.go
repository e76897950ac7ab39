package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/issue"
)

// AuditFilter selects audit events for review and export. The zero value
// selects every event; each field set narrows the selection further.
type AuditFilter struct {
	// Actor is an actor's email (or "system", "anonymous"), compared without
	// regard to case. A trailing "*" makes it a prefix: "alice*" or "*" alone
	// for anything.
	Actor       string
	Action      issue.Action
	ClusterID   int64
	SubjectType string
	SubjectID   int64
	// From and To bound the event time: From <= at < To. Zero leaves the
	// bound open.
	From, To time.Time
	// Text is searched for in the details, without regard to case; % and _
	// are plain characters.
	Text string
}

// AuditCursor is where a page of the review ends: the time and ID of its
// last (oldest) event. The next page holds the events strictly older in
// (at, id) order, so events appended meanwhile do not shift it.
type AuditCursor struct {
	At time.Time
	ID int64
}

// AuditRecord is an audit event as the review shows it: with its cluster's
// name and, when the subject is a user, that user's email now.
type AuditRecord struct {
	issue.AuditEvent
	ClusterName  string
	SubjectEmail string
}

// MaxAuditPage caps the events of one review page.
const MaxAuditPage = 500

// auditColumns are read by scanAuditRecord, in its order; the joins are
// auditJoins.
const (
	auditColumns = `e.id, e.at, e.actor_id, e.actor, e.action, e.subject_type, e.subject_id, e.cluster_id,
		e.details, e.ip, e.user_agent, e.prev_hash, e.hash, coalesce(c.name, ''), coalesce(su.email, '')`
	auditJoins = `audit_events e
		LEFT JOIN clusters c ON c.id = e.cluster_id
		LEFT JOIN users su ON e.subject_type = 'user' AND su.id = e.subject_id`
)

func scanAuditRecord(row pgx.Row) (*AuditRecord, error) {
	var (
		r       AuditRecord
		details []byte
	)
	err := row.Scan(&r.ID, &r.At, &r.ActorID, &r.Actor, &r.Action, &r.SubjectType, &r.SubjectID, &r.ClusterID,
		&details, &r.IP, &r.UserAgent, &r.PrevHash, &r.Hash, &r.ClusterName, &r.SubjectEmail)
	if err != nil {
		return nil, err
	}
	if r.Details, err = decodeDetails(details); err != nil {
		return nil, fmt.Errorf("audit event %d: %w", r.ID, err)
	}
	return &r, nil
}

// decodeDetails reads details as stored, keeping every number's digits, so
// that the chain hash is computed over exactly what was written.
func decodeDetails(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("details: %w", err)
	}
	return m, nil
}

// where turns f into SQL conditions on audit_events e, appending their
// arguments to args. Each condition matches one of the indexes of migration
// 0003.
func (f AuditFilter) where(args *[]any) []string {
	arg := func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	var conds []string
	if f.Actor != "" {
		if prefix, ok := strings.CutSuffix(f.Actor, "*"); ok {
			if prefix != "" {
				conds = append(conds, "lower(e.actor) LIKE lower("+arg(likeEscape(prefix)+"%")+")")
			}
		} else {
			conds = append(conds, "lower(e.actor) = lower("+arg(f.Actor)+")")
		}
	}
	if f.Action != "" {
		conds = append(conds, "e.action = "+arg(string(f.Action)))
	}
	if f.ClusterID != 0 {
		conds = append(conds, "e.cluster_id = "+arg(f.ClusterID))
	}
	if f.SubjectType != "" {
		conds = append(conds, "e.subject_type = "+arg(f.SubjectType))
	}
	if f.SubjectID != 0 {
		conds = append(conds, "e.subject_id = "+arg(f.SubjectID))
	}
	if !f.From.IsZero() {
		conds = append(conds, "e.at >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		conds = append(conds, "e.at < "+arg(f.To))
	}
	if f.Text != "" {
		conds = append(conds, "e.details::text ILIKE "+arg("%"+likeEscape(f.Text)+"%"))
	}
	return conds
}

// likeEscape makes s match itself in a LIKE pattern with the default escape
// character, backslash.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// auditPageQuery is the SQL of AuditEvents, with its arguments.
func auditPageQuery(f AuditFilter, after *AuditCursor, limit int) (string, []any) {
	var args []any
	conds := f.where(&args)
	if after != nil {
		args = append(args, after.At, after.ID)
		conds = append(conds, fmt.Sprintf("(e.at, e.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, limit)
	return `SELECT ` + auditColumns + ` FROM ` + auditJoins + whereClause(conds) +
		` ORDER BY e.at DESC, e.id DESC LIMIT $` + strconv.Itoa(len(args)), args
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// AuditEvents returns up to limit events that match f, newest first, starting
// after the cursor (from the newest when nil). limit is capped at
// MaxAuditPage.
func (s *Store) AuditEvents(ctx context.Context, f AuditFilter, after *AuditCursor, limit int) ([]*AuditRecord, error) {
	limit = max(1, min(limit, MaxAuditPage))
	sql, args := auditPageQuery(f, after, limit)
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapErr("audit events", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*AuditRecord, error) { return scanAuditRecord(row) })
	if err != nil {
		return nil, mapErr("audit events", err)
	}
	return out, nil
}

// ExplainAuditEvents returns PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) of the
// query AuditEvents runs for the same arguments, for tuning the indexes. It
// runs the query.
func (s *Store) ExplainAuditEvents(ctx context.Context, f AuditFilter, after *AuditCursor, limit int) (string, error) {
	sql, args := auditPageQuery(f, after, max(1, min(limit, MaxAuditPage)))
	rows, err := s.db.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
	if err != nil {
		return "", mapErr("explain audit events", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", mapErr("explain audit events", err)
	}
	return strings.Join(lines, "\n"), nil
}

// EachAuditEvent calls fn with every event that matches f, in chain order
// (id ascending, so oldest first), as the rows arrive from PostgreSQL: memory
// stays the same however many events match. One query, so the events are
// those of one snapshot. It stops at fn's first error and returns it; fn must
// not keep the record it is given.
func (s *Store) EachAuditEvent(ctx context.Context, f AuditFilter, fn func(*AuditRecord) error) error {
	var args []any
	conds := f.where(&args)
	rows, err := s.db.Query(ctx, `SELECT `+auditColumns+` FROM `+auditJoins+whereClause(conds)+` ORDER BY e.id`, args...)
	if err != nil {
		return mapErr("audit export", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanAuditRecord(rows)
		if err != nil {
			return mapErr("audit export", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return mapErr("audit export", rows.Err())
}

// AuditVerification is the outcome of one walk of the audit chain.
type AuditVerification struct {
	ID         int64
	VerifiedAt time.Time
	VerifiedBy string // "portal audit verify", or the staff member who asked
	SinceID    int64  // the walk trusted this event's hash and began after it; 0 from the start
	Events     int64  // events checked, the broken one included
	HeadID     int64  // the last event that checked out; 0 when none did
	HeadHash   []byte
	Took       time.Duration
	Broken     *AuditBreak // nil when every event checked out
}

// OK reports whether every event checked out.
func (v *AuditVerification) OK() bool { return v.Broken == nil }

// AuditBreak is the first event of the chain that did not check out.
type AuditBreak struct {
	ID      int64
	At      time.Time
	Problem string // what is wrong, in a sentence
}

// verifyLock is the advisory lock key held while the chain is walked
// ("auditv" in ASCII), so that one walk at a time loads the database.
const verifyLock = 0x617564697476

// verifyProgressEvery is how many events pass between calls of VerifyAudit's
// progress function.
const verifyProgressEvery = 100_000

// VerifyAudit walks the audit chain in id order from the event after sinceID
// (from the first event when 0; the hash of event sinceID is trusted as the
// starting point), recomputes each event's hash with issue.AuditEvent.ChainHash
// and checks that each prev_hash is the hash of the event before. It stops at
// the first event that does not check out and names it in the result's
// Broken. Rows are read as they arrive, so memory stays the same for any
// length of chain; progress, when not nil, is called with the count so far
// every 100,000 events. The result is not recorded: see
// RecordAuditVerification. Returns issue.ErrNotFound when event sinceID does
// not exist, and a Problem of kind issue.ErrConflict when another walk is
// running.
func (s *Store) VerifyAudit(ctx context.Context, sinceID int64, progress func(n int64)) (*AuditVerification, error) {
	start := time.Now()
	v := &AuditVerification{SinceID: sinceID}
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
			return issue.Refuse(issue.ErrConflict, "A verification of the audit chain is running already; its result will show here when it ends.")
		}
		prev := issue.GenesisHash()
		if sinceID > 0 {
			if err := tx.db.QueryRow(ctx, `SELECT hash FROM audit_events WHERE id = $1`, sinceID).Scan(&prev); err != nil {
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
			e       issue.AuditEvent
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
			if problem := checkLink(&e, details, prev, v.HeadID); problem != "" {
				v.Broken = &AuditBreak{ID: e.ID, At: e.At, Problem: problem}
				return nil
			}
			prev = e.Hash
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

// checkLink says what is wrong with e, which follows the event prevID whose
// hash is prev, or returns "" when e checks out.
func checkLink(e *issue.AuditEvent, details, prev []byte, prevID int64) string {
	if !bytes.Equal(e.PrevHash, prev) {
		before := fmt.Sprintf("event %d", prevID)
		if prevID == 0 {
			before = "the genesis hash"
		}
		return fmt.Sprintf("prev_hash does not link: it is %s, but the hash of %s is %s; "+
			"an event between them was deleted or inserted, or one of them rewritten",
			short(e.PrevHash), before, short(prev))
	}
	var err error
	if e.Details, err = decodeDetails(details); err != nil {
		return "details are not a JSON object: " + err.Error()
	}
	want, err := e.ChainHash(e.PrevHash)
	if err != nil {
		return "the event cannot be encoded for hashing: " + err.Error()
	}
	if !bytes.Equal(e.Hash, want) {
		return fmt.Sprintf("hash mismatch: the stored hash is %s, the event's content hashes to %s; the event was changed after it was written",
			short(e.Hash), short(want))
	}
	return ""
}

// short is the first 16 hex digits of a hash, enough to tell hashes apart in
// a message.
func short(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// RecordAuditVerification stores the outcome of a walk, for the audit page to
// show, and sets v.ID and v.VerifiedAt.
func (s *Store) RecordAuditVerification(ctx context.Context, v *AuditVerification) error {
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
// Returns issue.ErrNotFound when the chain was never verified.
func (s *Store) LastAuditVerification(ctx context.Context) (*AuditVerification, error) {
	var (
		v        AuditVerification
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
		v.Broken = &AuditBreak{ID: *brokenID, Problem: problem}
		if brokenAt != nil {
			v.Broken.At = *brokenAt
		}
	}
	return &v, nil
}
