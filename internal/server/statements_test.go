package server

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// statementLog is a pgx tracer that records every statement a portal's pool
// runs, with the command tag PostgreSQL answered: queries, each query of a
// batch, and copies. It records by time, not by request: pgxstore runs the
// session's statements on context.Background, so a mark in the request's
// context would miss them. Tests read it around requests made one at a
// time, on a portal with no background worker (no outbox senders); the
// notification hub listens on a connection of its own and runs nothing
// once it is listening.
type statementLog struct {
	mu    sync.Mutex
	stmts []statement
}

// statement is one statement as the tracer saw it.
type statement struct {
	SQL string
	Tag string // the command tag: "SELECT 1", "INSERT 0 1", or "" when it failed
}

func (s statement) String() string { return fmt.Sprintf("%s ← %s", s.Tag, oneLine(s.SQL)) }

// writes reports whether the statement changed rows: an INSERT, UPDATE,
// DELETE, MERGE or COPY. A write inside a SELECT's WITH clause answers
// SELECT: rowVersions catches those.
func (s statement) writes() bool {
	verb, _, _ := strings.Cut(s.Tag, " ")
	switch verb {
	case "INSERT", "UPDATE", "DELETE", "MERGE", "COPY":
		return true
	}
	return false
}

type traceSQL struct{}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceSQL{}, d.SQL)
}

func (l *statementLog) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	sql, _ := ctx.Value(traceSQL{}).(string)
	l.add(statement{SQL: sql, Tag: d.CommandTag.String()})
}

func (l *statementLog) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (l *statementLog) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	l.add(statement{SQL: d.SQL, Tag: d.CommandTag.String()})
}

func (l *statementLog) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (l *statementLog) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	return context.WithValue(ctx, traceSQL{}, "COPY "+d.TableName.Sanitize())
}

func (l *statementLog) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromEndData) {
	sql, _ := ctx.Value(traceSQL{}).(string)
	l.add(statement{SQL: sql, Tag: d.CommandTag.String()})
}

func (l *statementLog) add(s statement) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stmts = append(l.stmts, s)
}

// take returns the statements recorded since the last take, and forgets
// them.
func (l *statementLog) take() statements {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stmts
	l.stmts = nil
	return s
}

// statements are statements in the order they ran.
type statements []statement

// writes are the statements that changed rows.
func (ss statements) writes() statements {
	var w statements
	for _, s := range ss {
		if s.writes() {
			w = append(w, s)
		}
	}
	return w
}

func (ss statements) String() string {
	var b strings.Builder
	for i, s := range ss {
		fmt.Fprintf(&b, "\n  %2d. %s", i+1, s)
	}
	return b.String()
}

// oneLine squeezes a statement's white space, for a readable failure.
func oneLine(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// rowVersions is every row of every table of the portal's database by its
// physical version (ctid and xmin): any INSERT, UPDATE or DELETE, a write
// inside a WITH clause too, changes it, and nothing else does. It runs on
// the portal's pool, so take the statement log after it, not across it.
func (p *testPortal) rowVersions() string {
	p.t.Helper()
	ctx := context.Background()
	rows, err := p.Store.Pool().Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	if err != nil {
		p.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		p.t.Fatal(err)
	}
	var b strings.Builder
	for _, table := range tables {
		var versions string
		err := p.Store.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(ctid::text || '@' || xmin::text, ' ' ORDER BY ctid), '') FROM `+
			pgx.Identifier{table}.Sanitize()).Scan(&versions)
		if err != nil {
			p.t.Fatalf("row versions of %s: %v", table, err)
		}
		fmt.Fprintf(&b, "%s: %s\n", table, versions)
	}
	return b.String()
}
