// Package store keeps the portal's state in PostgreSQL: one method per SQL
// statement (or per round trip of statements read together), every error
// mapped to the kinds of portal.Error.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// db is what a Store runs statements on: the pool, or one transaction.
type db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store is the portal's PostgreSQL data layer. The zero value is not usable;
// call New.
type Store struct {
	db    db
	pool  *pgxpool.Pool
	chain *chainHead // in a transaction: the audit chain's head once locked
}

// chainHead is the audit chain's head as a transaction knows it while it
// holds the chain's lock: no one else can move it then, so it is read once.
type chainHead struct {
	hash []byte    // nil until the lock is taken
	at   time.Time // the head event's time; zero for an empty chain
	// clock is the database's clock read by the last statement of round
	// trip trip of transaction db: fresh while db has made no trip since.
	clock time.Time
	db    *txdb
	trip  int
	// heldBy is the transaction (or savepoint) that holds the lock back
	// to go with its next statement, if one does.
	heldBy *txdb
}

// freshClock returns the chain's clock if no statement of the transaction
// t has run since it was read.
func (c *chainHead) freshClock(t *txdb) (time.Time, bool) {
	if c.clock.IsZero() || c.db != t || c.trip != t.root().trips {
		return time.Time{}, false
	}
	return c.clock, true
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{db: pool, pool: pool}
}

// Pool is the connection pool behind the store, for the parts (sessions,
// migrations, LISTEN) that speak to PostgreSQL through their own library.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// InTx runs fn with a Store bound to one transaction, committed when fn
// returns nil and rolled back otherwise. Inside a transaction, InTx opens a
// savepoint. In the transaction, some writes are held back to go in the
// round trip of the next statement (see txdb): their errors come with it,
// or with the commit, and then fail the transaction.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	t := &txdb{pool: s.pool}
	if outer, ok := s.db.(*txdb); ok {
		sp, err := outer.savepoint(ctx)
		if err != nil {
			return err
		}
		t = sp
	}
	// Rollback after commit is a no-op; it also covers a panic in fn.
	defer t.rollback(context.WithoutCancel(ctx))
	chain := &chainHead{}
	if s.chain != nil { // a savepoint shares its transaction's view of the chain
		chain = s.chain
	}
	if err := fn(&Store{db: t, pool: s.pool, chain: chain}); err != nil {
		if s.chain != nil {
			chain.hash = nil // events rolled back with the savepoint: read the head again
		}
		return err
	}
	// What the transaction held back goes with its commit; a failure of
	// it, there or earlier, rolls the transaction back.
	if err := t.commit(ctx); err != nil {
		if s.chain != nil {
			chain.hash = nil
		}
		return err
	}
	return nil
}

// collect reads every row of a query with scan, for a call such as
// collect(scanCluster)(s.db.Query(…)); err is the query's own.
func collect[T any](scan func(pgx.Row) (*T, error)) func(pgx.Rows, error) ([]*T, error) {
	return func(rows pgx.Rows, err error) ([]*T, error) {
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*T, error) { return scan(row) })
	}
}

// changedOnce reads the answer of a statement that changes a row only in
// the state it may change from, and says whether it did and whether the row
// exists: (changed, exists). The existence check rides in the same
// statement, so that a missing row and one in another state are told apart
// without a second trip. A missing row is portal.ErrNotFound, one in another
// state portal.ErrConflict (why says which state).
func changedOnce(op, why string, row pgx.Row) error {
	var changed, exists bool
	switch err := row.Scan(&changed, &exists); {
	case err != nil:
		return mapErr(op, err)
	case !exists:
		return fmt.Errorf("store: %s: %w", op, portal.ErrNotFound)
	case !changed:
		return fmt.Errorf("store: %s: %s: %w", op, why, portal.ErrConflict)
	}
	return nil
}

// PostgreSQL error codes the store gives a meaning to.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeCheckViolation      = "23514"
	codeNotNullViolation    = "23502"
	// The server is going away or not taking connections: an administrator
	// or a fast shutdown ended the session (57P01), a crash did (57P02), or
	// the server is starting or shutting down (57P03).
	codeAdminShutdown = "57P01"
	codeCrashShutdown = "57P02"
	codeCannotConnect = "57P03"
	// classConnection is SQLSTATE class 08, connection exceptions.
	classConnection = "08"
)

// mapErr turns a driver error into the portal's vocabulary: a missing row is
// portal.ErrNotFound, a duplicate is portal.ErrConflict, a violated rule of the
// schema is portal.ErrInvalid, a database that cannot be reached is
// portal.ErrDatabaseUnavailable; anything else is wrapped with the operation.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", op, portal.ErrNotFound)
	}
	if Unreachable(err) {
		// The driver's error stays in the chain for the log line; the
		// person sees the kind's words only.
		return fmt.Errorf("store: %s: %w: %w", op, portal.ErrDatabaseUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeUniqueViolation:
			return fmt.Errorf("store: %s: %w (%s)", op, portal.ErrConflict, pgErr.ConstraintName)
		case codeForeignKeyViolation, codeCheckViolation, codeNotNullViolation:
			return fmt.Errorf("store: %s: %w (%s)", op, portal.ErrInvalid, pgErr.ConstraintName)
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// Unreachable reports whether err says PostgreSQL could not be reached or
// went away mid-statement, rather than refusing the statement: no
// connection could be made, the connection broke, the pool waited past its
// deadline for one, or the server is shutting down or starting. Such an
// error passes once the database is back, and nothing of the statement was
// committed unless its COMMIT had reached the server. The session store,
// which speaks to PostgreSQL through its own library, is judged by it too.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return strings.HasPrefix(pgErr.Code, classConnection) ||
			pgErr.Code == codeAdminShutdown || pgErr.Code == codeCrashShutdown || pgErr.Code == codeCannotConnect
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true // a dial, read or write on the socket failed or timed out
	}
	// A deadline is the pool's wait for a connection or a query's on a
	// server that does not answer; a cancellation is the client leaving,
	// and is not the database's doing.
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TryAdvisoryLock takes the transaction-level advisory lock key if no
// one holds it, for work only one replica should do at a time. Call inside
// InTx: the lock ends with the transaction. Reports whether it was taken.
func (s *Store) TryAdvisoryLock(ctx context.Context, key int64) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, key).Scan(&ok)
	return ok, mapErr("advisory lock", err)
}
