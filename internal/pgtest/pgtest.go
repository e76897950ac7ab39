// Package pgtest gives each test a fresh PostgreSQL database of its own, on
// the server DATABASE_URL names, so that tests can run in parallel. Databases
// are cloned from a template migrated once per schema, and dropped after a
// passing test; a failing test's database is kept for a look.
//
// Only tests import it, so no binary reaches its functions: `deadcode ./...`
// lists them as unreachable, and that is expected.
package pgtest

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver pgtestdb connects with
	"github.com/peterldowns/pgtestdb"
	"github.com/peterldowns/pgtestdb/migrators/goosemigrator"

	"github.com/2i2c-org/credential-portal/migrations"
)

const unset = "DATABASE_URL is not set: run `make test` (it starts a throwaway PostgreSQL), " +
	"or set DATABASE_URL to a server whose role may create databases and roles"

// New returns a pool on a fresh database with every migration applied,
// closed when the test ends. It fails the test when DATABASE_URL is unset or
// the database cannot be made.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return NewTraced(t, nil)
}

// NewTraced is New with tracer watching every statement of the pool's
// connections: a pgx.QueryTracer that may also be a pgx.BatchTracer or a
// pgx.CopyFromTracer, as pgx calls those for batches and copies. A nil
// tracer is New.
func NewTraced(t testing.TB, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	conf, err := pgxpool.ParseConfig(URL(t))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	conf.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), conf)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// URL returns the connection URL of a fresh database with every migration
// applied, for tests that start a whole server. Whatever connects to it must
// disconnect before the test's cleanup ends, or dropping the database fails
// the test. It fails the test when DATABASE_URL is unset or the database
// cannot be made.
func URL(t testing.TB) string {
	t.Helper()
	return fresh(t, goosemigrator.New(".", goosemigrator.WithFS(migrations.FS)))
}

// Empty returns the connection URL of a fresh database with no migration
// applied, for tests of the migrations themselves. It fails the test when
// DATABASE_URL is unset or the database cannot be made.
func Empty(t testing.TB) string {
	t.Helper()
	return fresh(t, pgtestdb.NoopMigrator{})
}

func fresh(t testing.TB, m pgtestdb.Migrator) string {
	t.Helper()
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		t.Fatal(unset)
	}
	conf, err := config(dsn)
	if err != nil {
		t.Fatalf("pgtest: DATABASE_URL: %v", err)
	}
	return pgtestdb.Custom(t, conf, m).URL()
}

// config turns a connection URL into pgtestdb's settings. pgtestdb pastes
// them into a URL of its own unescaped, so each is percent-encoded here, which
// also lets a unix socket folder stand where a host name goes. The URL's other
// parameters (sslmode and the like) are kept.
func config(dsn string) (pgtestdb.Config, error) {
	rest, ok := strings.CutPrefix(dsn, "postgres://")
	if !ok {
		rest, ok = strings.CutPrefix(dsn, "postgresql://")
	}
	if !ok {
		return pgtestdb.Config{}, errors.New("not a postgres:// URL")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return pgtestdb.Config{}, err
	}
	// As libpq does, take the first "@" before any "/" to end the user and
	// password, which may hold a "?".
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		rest = rest[i+1:]
	}
	_, query, _ := strings.Cut(rest, "?")
	return pgtestdb.Config{
		DriverName: "pgx",
		Host:       escape(cfg.Host),
		Port:       strconv.Itoa(int(cfg.Port)),
		User:       escape(cfg.User),
		Password:   escape(cfg.Password),
		Database:   escape(cfg.Database),
		Options:    options(query),
	}, nil
}

// options drops from a URL query the parameters that pgtestdb's URL states
// itself, or must be free to change for each database it connects to.
func options(query string) string {
	var kept []string
	for param := range strings.SplitSeq(query, "&") {
		key, _, _ := strings.Cut(param, "=")
		switch key, _ := url.PathUnescape(key); key {
		case "", "host", "port", "user", "password", "dbname":
		default:
			kept = append(kept, param)
		}
	}
	return strings.Join(kept, "&")
}

// escape percent-encodes s for any part of a connection URL; libpq reads a
// "+" literally, so a space becomes %20.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
