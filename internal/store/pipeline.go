package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// txdb is one transaction, or a savepoint in one, that holds back what need
// not go to PostgreSQL on its own, and sends it in the round trip of its next
// statement, as one pipelined batch:
//
//   - the transaction's BEGIN, until its first statement, and its COMMIT,
//     which goes with what is held back at the end;
//   - ahead: writes whose answers no one reads before the next statement
//     (a request's decision, audit events, messages), sent before it, so
//     that it and everything after see them;
//   - behind: the audit chain's lock and head, and reads of what the next
//     statement writes, sent after it, so that the clock read with the
//     lock is as late as the transaction's last statement.
//
// A held-back statement's answer is read, and its scan function run, in that
// trip. Should one fail, the failure is the transaction's from then on:
// every later statement and the commit return it, so that nothing is
// committed without it, even when the statement that carried it was itself
// refused and retried. A savepoint and a multi-row read send what is held
// back on its own first. A transaction that ran no statement makes no round
// trip at all.
//
// The transaction is PostgreSQL's own, begun and ended by statements on one
// pooled connection rather than through pgx.Tx, whose Commit is a round trip
// of its own. A connection given back while still in a transaction (one whose
// ROLLBACK failed) is closed by the pool, never reused.
type txdb struct {
	pool  *pgxpool.Pool // where the transaction's connection comes from
	outer *txdb         // for a savepoint, its transaction; nil for the transaction
	name  string        // a savepoint's name

	conn   *pgxpool.Conn // the transaction's: nil until its first round trip
	begun  bool          // BEGIN (SAVEPOINT) has been sent
	ended  bool          // committed, or rolled back
	trips  int           // the transaction's round trips, to tell whether a clock is fresh
	failed error         // the first held-back statement that failed

	ahead, behind []*pgx.QueuedQuery
	// checks counts the statements ahead whose scan may refuse an answer
	// PostgreSQL accepted (a decision on a request no longer pending): a
	// COMMIT must not ride with them, as PostgreSQL would run it anyway.
	checks int
}

// root is the transaction a savepoint is in, or t itself.
func (t *txdb) root() *txdb {
	for t.outer != nil {
		t = t.outer
	}
	return t
}

// holdAhead queues a write to go before the transaction's next statement;
// its scan function runs when the answer arrives.
func (t *txdb) holdAhead(sql string, args ...any) *pgx.QueuedQuery {
	q := &pgx.QueuedQuery{SQL: sql, Arguments: args}
	t.ahead = append(t.ahead, q)
	return q
}

// holdChecked is holdAhead for a write whose scan may refuse what
// PostgreSQL accepted.
func (t *txdb) holdChecked(sql string, args ...any) *pgx.QueuedQuery {
	t.checks++
	return t.holdAhead(sql, args...)
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
func (t *txdb) direct() bool { return t.begun && !t.holding() && t.failed == nil }

// send makes one round trip with what is held back and qs between ahead and
// behind (after the BEGIN, for the first), runs the scan functions of the
// statements ahead, and returns the batch for the caller to read qs's answers
// from and close (which runs the scan functions of the statements behind).
func (t *txdb) send(ctx context.Context, qs ...*pgx.QueuedQuery) (pgx.BatchResults, error) {
	if t.failed != nil {
		return nil, t.failed
	}
	root := t.root()
	if root.conn == nil {
		conn, err := root.pool.Acquire(ctx)
		if err != nil {
			return nil, t.fail(mapErr("begin", err))
		}
		root.conn = conn
	}
	b := &pgx.Batch{}
	begin := !t.begun
	if begin { // only a transaction: a savepoint is begun when it is made
		b.Queue("begin")
		t.begun = true
	}
	ahead, behind := t.ahead, t.behind
	t.ahead, t.behind, t.checks = nil, nil, 0
	b.QueuedQueries = append(append(append(b.QueuedQueries, ahead...), qs...), behind...)
	for _, q := range behind {
		held := &pgx.QueuedQuery{Fn: q.Fn}
		q.Fn = func(br pgx.BatchResults) error { return t.answer(held, br) }
	}
	root.trips++
	br := root.conn.SendBatch(ctx, b)
	if begin {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, t.fail(mapErr("begin", err))
		}
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
	if t.begun && !t.holding() {
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

// commit ends the transaction, its COMMIT in one round trip with what is
// held back; a transaction that never sent a statement has nothing to
// commit. A savepoint is released once what it holds back has gone: the
// release rides with its transaction's next statement.
func (t *txdb) commit(ctx context.Context) error {
	if t.outer != nil {
		if err := t.flush(ctx); err != nil {
			return err
		}
		t.ended = true
		t.outer.holdAhead("RELEASE SAVEPOINT " + t.name)
		return nil
	}
	if !t.begun && !t.holding() {
		return nil
	}
	if t.checks > 0 { // their answers are checked before anything is committed
		if err := t.flush(ctx); err != nil {
			return err
		}
	}
	br, err := t.send(ctx, &pgx.QueuedQuery{SQL: "commit"})
	if err != nil {
		return err
	}
	// The COMMIT's own answer decides. What went behind it (a read of what
	// was committed) reports to its own scan function, not here: it must not
	// make a committed transaction look failed.
	tag, err := br.Exec()
	br.Close() //nolint:errcheck // see above
	switch {
	case err != nil:
		if t.failed != nil { // the statement that failed stopped the COMMIT
			return t.failed
		}
		return mapErr("commit", err)
	case tag.String() != "COMMIT": // PostgreSQL rolled back a failed transaction
		return mapErr("commit", pgx.ErrTxCommitRollback)
	}
	t.ended = true
	t.conn.Release()
	return nil
}

// rollback ends a transaction that was not committed, and gives back its
// connection; a savepoint is rolled back to with its transaction's next
// statement, and what it held back is dropped. After a commit it does
// nothing.
func (t *txdb) rollback(ctx context.Context) {
	if t.ended {
		return
	}
	t.ended = true
	t.ahead, t.behind, t.checks = nil, nil, 0
	if t.outer != nil {
		t.outer.holdAhead("ROLLBACK TO SAVEPOINT " + t.name)
		return
	}
	if t.conn == nil {
		return
	}
	if t.begun {
		if _, err := t.conn.Exec(ctx, "rollback"); err != nil {
			// The connection is in an unknown state: not for reuse.
			t.conn.Conn().Close(ctx) //nolint:errcheck // the transaction's own error is the one to report
		}
	}
	t.conn.Release()
}

// savepoint makes a savepoint in t, with t's next statement.
func (t *txdb) savepoint(ctx context.Context) (*txdb, error) {
	root := t.root()
	name := fmt.Sprintf("s%d", root.trips)
	if _, err := t.Exec(ctx, "SAVEPOINT "+name); err != nil {
		return nil, mapErr("savepoint", err)
	}
	return &txdb{outer: t, name: name, begun: true}, nil
}

// Exec runs sql in the round trip of whatever is held back.
func (t *txdb) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.direct() {
		t.root().trips++
		return t.root().conn.Exec(ctx, sql, args...)
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
		t.root().trips++
		return t.root().conn.QueryRow(ctx, sql, args...)
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
	t.root().trips++
	return t.root().conn.Query(ctx, sql, args...)
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

// SendHeld sends what the transaction holds back now, in a round trip of its
// own, and returns the first failure in it; outside a transaction, or with
// nothing held back, it does nothing. A caller with other work to do while
// PostgreSQL writes (an approval, while the password is hashed) sends its
// writes here rather than with the statement after that work.
func (s *Store) SendHeld(ctx context.Context) error {
	if t, ok := s.db.(*txdb); ok && t.holding() {
		return t.flush(ctx)
	}
	return nil
}

// holdWrite runs a write whose one row scan reads and may refuse: in a
// transaction, held back to go ahead of the transaction's next statement, so
// that its answer, and any error, arrive with that statement's (or before the
// commit); otherwise at once.
func (s *Store) holdWrite(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	if t, ok := s.db.(*txdb); ok {
		t.holdChecked(sql, args...).QueryRow(scan)
		return nil
	}
	return scan(s.db.QueryRow(ctx, sql, args...))
}
