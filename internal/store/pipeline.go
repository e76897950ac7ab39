package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// txdb is one transaction that holds back what need not go to PostgreSQL
// on its own, and sends it in the round trip of its next statement, as one
// pipelined batch:
//
//   - the transaction's BEGIN, until its first statement;
//   - ahead: writes whose answers no one reads before the next statement
//     (a request's decision, audit events, messages), sent before it, so
//     that it and everything after see them;
//   - behind: the audit chain's lock and head, sent after it, so that the
//     clock read with the lock is as late as the transaction's last
//     statement.
//
// A held-back statement's answer is read, and its scan function run, in that
// trip. Should one fail, the failure is the transaction's from then on:
// every later statement and the commit return it, so that nothing is
// committed without it, even when the statement that carried it was itself
// refused and retried. A commit, a savepoint and a multi-row read send what
// is held back on its own first. A transaction that ran no statement makes no
// round trip at all.
type txdb struct {
	start         db     // where the transaction begins: the pool, or the enclosing transaction for a savepoint
	tx            pgx.Tx // nil until the first round trip begins it
	ahead, behind []*pgx.QueuedQuery
	failed        error // the first held-back statement that failed
	trips         int   // round trips made, to tell whether a clock is fresh
}

// holdAhead queues a write to go before the transaction's next statement;
// its scan function runs when the answer arrives.
func (t *txdb) holdAhead(sql string, args ...any) *pgx.QueuedQuery {
	q := &pgx.QueuedQuery{SQL: sql, Arguments: args}
	t.ahead = append(t.ahead, q)
	return q
}

// holdBehind queues a statement to go after the transaction's next one.
func (t *txdb) holdBehind(sql string, args ...any) *pgx.QueuedQuery {
	q := &pgx.QueuedQuery{SQL: sql, Arguments: args}
	t.behind = append(t.behind, q)
	return q
}

// holding reports whether any statement waits for the next trip.
func (t *txdb) holding() bool { return len(t.ahead)+len(t.behind) > 0 }

// direct reports whether a statement can go on its own: the transaction has
// begun, holds nothing back and has not failed.
func (t *txdb) direct() bool { return t.tx != nil && !t.holding() && t.failed == nil }

// send makes one round trip with what is held back and qs between ahead and
// behind, runs the scan functions of the statements ahead, and returns the
// batch for the caller to read qs's answers from and close (which runs the
// scan functions of the statements behind).
func (t *txdb) send(ctx context.Context, qs ...*pgx.QueuedQuery) (pgx.BatchResults, error) {
	if t.failed != nil {
		return nil, t.failed
	}
	b := &pgx.Batch{}
	begin := t.tx == nil && t.start != nil
	if begin {
		b.BeginTx(pgx.TxOptions{})
	}
	ahead, behind := t.ahead, t.behind
	t.ahead, t.behind = nil, nil
	b.QueuedQueries = append(append(append(b.QueuedQueries, ahead...), qs...), behind...)
	for _, q := range behind {
		held := &pgx.QueuedQuery{Fn: q.Fn}
		q.Fn = func(br pgx.BatchResults) error { return t.answer(held, br) }
	}
	t.trips++
	var br pgx.BatchResults
	if begin {
		br = t.start.SendBatch(ctx, b)
		t.tx = br.Tx()
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, t.fail(mapErr("begin", err))
		}
	} else {
		br = t.tx.SendBatch(ctx, b)
	}
	for _, q := range ahead {
		if err := t.answer(q, br); err != nil {
			br.Close()
			return nil, err
		}
	}
	return br, nil
}

// answer reads a held-back statement's answer from br and runs its scan
// function; a failure becomes the transaction's.
func (t *txdb) answer(q *pgx.QueuedQuery, br pgx.BatchResults) error {
	if q.Fn == nil {
		_, err := br.Exec()
		return t.fail(mapErr("held-back statement", err))
	}
	return t.fail(q.Fn(br))
}

// fail records err, when it is one, as the transaction's failure.
func (t *txdb) fail(err error) error {
	if err != nil && t.failed == nil {
		t.failed = fmt.Errorf("%w (in an earlier statement of this transaction)", err)
	}
	return err
}

// flush sends what is held back on its own, beginning the transaction if
// no statement has yet.
func (t *txdb) flush(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	if t.tx != nil && !t.holding() {
		return nil
	}
	br, err := t.send(ctx)
	if err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}
	return t.failed
}

// commit sends what is held back and commits; a transaction that never
// sent a statement has nothing to commit.
func (t *txdb) commit(ctx context.Context) error {
	if t.tx == nil && !t.holding() {
		return nil
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	if err := t.tx.Commit(ctx); err != nil {
		return mapErr("commit", err)
	}
	return nil
}

// rollback ends a transaction that was begun and not committed (after a
// commit it does nothing).
func (t *txdb) rollback(ctx context.Context) {
	if t.tx != nil {
		t.tx.Rollback(ctx) //nolint:errcheck // the transaction's own error is the one to report
	}
}

// Exec runs sql in the round trip of whatever is held back.
func (t *txdb) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.direct() {
		t.trips++
		return t.tx.Exec(ctx, sql, args...)
	}
	br, err := t.send(ctx, &pgx.QueuedQuery{SQL: sql, Arguments: args})
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// QueryRow runs sql in the round trip of whatever is held back.
func (t *txdb) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.direct() {
		t.trips++
		return t.tx.QueryRow(ctx, sql, args...)
	}
	br, err := t.send(ctx, &pgx.QueuedQuery{SQL: sql, Arguments: args})
	if err != nil {
		return failedRow{err}
	}
	return batchRow{br.QueryRow(), br}
}

// Query sends what is held back first: the rows of a batch are read while
// the batch is open, which the caller's loop cannot be trusted to close.
func (t *txdb) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	t.trips++
	return t.tx.Query(ctx, sql, args...)
}

// SendBatch sends b in the round trip of whatever is held back; the caller
// reads b's answers, and Close runs the scan functions of what went behind.
func (t *txdb) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	br, err := t.send(ctx, b.QueuedQueries...)
	if err != nil {
		return failedBatch{err}
	}
	return br
}

// Begin opens a savepoint once what is held back has gone.
func (t *txdb) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	t.trips++
	return t.tx.Begin(ctx)
}

// batchRow is the one row of a statement sent in a batch: scanning it
// closes the batch, which reads the answers of what went behind.
type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// failedRow is a row whose statement was never sent, as an earlier one
// failed.
type failedRow struct{ err error }

func (r failedRow) Scan(...any) error { return r.err }

// failedBatch is a batch never sent, as an earlier statement failed.
type failedBatch struct{ err error }

func (b failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b failedBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b failedBatch) QueryRow() pgx.Row                { return failedRow(b) }
func (b failedBatch) Close() error                     { return b.err }
func (b failedBatch) Tx() pgx.Tx                       { return nil }

// holdWrite runs a write whose one row scan reads: in a transaction, held
// back to go ahead of the transaction's next statement, so that its answer,
// and any error, arrive with that statement's (or the commit's); otherwise
// at once.
func (s *Store) holdWrite(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	if t, ok := s.db.(*txdb); ok {
		t.holdAhead(sql, args...).QueryRow(scan)
		return nil
	}
	return scan(s.db.QueryRow(ctx, sql, args...))
}
