package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// auditColumns are read by scanAuditRecord, in its order; the joins are
// auditJoins.
const (
	auditColumns = `e.id, e.at, e.actor_id, e.actor, e.action, e.subject_type, e.subject_id, e.cluster_id,
		e.details, e.ip, e.user_agent, e.prev_hash, e.hash, coalesce(c.name, ''), coalesce(su.email, '')`
	auditJoins = `audit_events e
		LEFT JOIN clusters c ON c.id = e.cluster_id
		LEFT JOIN users su ON e.subject_type = 'user' AND su.id = e.subject_id`
)

func scanAuditRecord(row pgx.Row) (*portal.AuditRecord, error) {
	var (
		r       portal.AuditRecord
		details []byte
	)
	err := row.Scan(&r.ID, &r.At, &r.ActorID, &r.Actor, &r.Action, &r.SubjectType, &r.SubjectID, &r.ClusterID,
		&details, &r.IP, &r.UserAgent, &r.PrevHash, &r.Hash, &r.ClusterName, &r.SubjectEmail)
	if err != nil {
		return nil, err
	}
	if r.Details, err = portal.DecodeDetails(details); err != nil {
		return nil, fmt.Errorf("audit event %d: %w", r.ID, err)
	}
	return &r, nil
}

// auditWhere turns f into SQL conditions on audit_events e, appending their
// arguments to args. Each condition matches one of the indexes of migration
// 0003.
func auditWhere(f portal.AuditFilter, args *[]any) []string {
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
func auditPageQuery(f portal.AuditFilter, after *portal.AuditCursor, limit int) (string, []any) {
	var args []any
	conds := auditWhere(f, &args)
	if after != nil {
		args = append(args, after.At, after.ID)
		conds = append(conds, fmt.Sprintf("(e.at, e.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	return `SELECT ` + auditColumns + ` FROM ` + auditJoins + whereClause(conds) +
		` ORDER BY e.at DESC, e.id DESC` + limitClause(limit), args
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// AuditEvents returns up to limit events that match f, newest first, starting
// after the cursor (from the newest when nil). limit is capped at
// portal.MaxAuditPage.
func (s *Store) AuditEvents(ctx context.Context, f portal.AuditFilter, after *portal.AuditCursor, limit int) ([]*portal.AuditRecord, error) {
	limit = max(1, min(limit, portal.MaxAuditPage))
	sql, args := auditPageQuery(f, after, limit)
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapErr("audit events", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*portal.AuditRecord, error) { return scanAuditRecord(row) })
	if err != nil {
		return nil, mapErr("audit events", err)
	}
	return out, nil
}

// ExplainAuditEvents returns PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) of the
// query AuditEvents runs for the same arguments, for tuning the indexes. It
// runs the query.
func (s *Store) ExplainAuditEvents(ctx context.Context, f portal.AuditFilter, after *portal.AuditCursor, limit int) (string, error) {
	sql, args := auditPageQuery(f, after, max(1, min(limit, portal.MaxAuditPage)))
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
func (s *Store) EachAuditEvent(ctx context.Context, f portal.AuditFilter, fn func(*portal.AuditRecord) error) error {
	var args []any
	conds := auditWhere(f, &args)
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
