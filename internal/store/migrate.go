package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/2i2c-org/credential-portal/migrations"
)

// SchemaStatus says where the database's schema stands against the
// migrations built into this binary.
type SchemaStatus struct {
	Current int64 // the version the database is at; 0 when empty
	Latest  int64 // the newest version this binary knows
	Pending []MigrationStatus
	Applied []MigrationStatus
}

// MigrationStatus is one migration file and whether it has been applied.
type MigrationStatus struct {
	Version int64
	Source  string
	Applied bool
}

// Problem describes a schema that is not the expected one and what to do about
// it, or returns "" when it is.
func (s SchemaStatus) Problem() string {
	switch {
	case s.Current < s.Latest:
		return fmt.Sprintf("database schema is at version %d, this portal needs %d: run `portal migrate up`", s.Current, s.Latest)
	case s.Current > s.Latest:
		return fmt.Sprintf("database schema is at version %d, newer than this portal knows (%d): run a newer portal release", s.Current, s.Latest)
	}
	return ""
}

// provider reads the embedded migrations. With locked, it takes goose's
// PostgreSQL session lock around its work, so that two `portal migrate up`
// started at once (one per replica, say) apply each migration once. Reading
// the schema's version does without: goose would make every /readyz wait for
// a running migration, and take every replica out of rotation while it runs.
func provider(pool *pgxpool.Pool, log *slog.Logger, locked bool) (*goose.Provider, error) {
	var logger goose.Logger = gooseLogger{log}
	if log == nil {
		logger = goose.NopLogger()
	}
	opts := []goose.ProviderOption{goose.WithLogger(logger)}
	if locked {
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("store: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, stdlib.OpenDBFromPool(pool), migrations.FS, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

// Migrate applies every pending migration, each in its own transaction, and
// returns the versions applied. log may be nil.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]int64, error) {
	p, err := provider(pool, log, true)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate up: %w", err)
	}
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// Schema reports the schema's version against the migrations in the binary.
func Schema(ctx context.Context, pool *pgxpool.Pool) (SchemaStatus, error) {
	p, err := provider(pool, nil, false)
	if err != nil {
		return SchemaStatus{}, err
	}
	defer p.Close()
	var st SchemaStatus
	sources := p.ListSources()
	if len(sources) > 0 {
		st.Latest = sources[len(sources)-1].Version
	}
	if st.Current, err = p.GetDBVersion(ctx); err != nil {
		return SchemaStatus{}, fmt.Errorf("store: schema version: %w", err)
	}
	results, err := p.Status(ctx)
	if err != nil {
		return SchemaStatus{}, fmt.Errorf("store: migration status: %w", err)
	}
	for _, r := range results {
		m := MigrationStatus{Version: r.Source.Version, Source: r.Source.Path, Applied: r.State == goose.StateApplied}
		if m.Applied {
			st.Applied = append(st.Applied, m)
		} else {
			st.Pending = append(st.Pending, m)
		}
	}
	return st, nil
}

// gooseLogger sends goose's progress lines to slog.
type gooseLogger struct{ log *slog.Logger }

func (g gooseLogger) Printf(format string, v ...any) {
	g.log.Info(fmt.Sprintf(format, v...), "component", "migrate")
}

func (g gooseLogger) Fatalf(format string, v ...any) {
	g.log.Error(fmt.Sprintf(format, v...), "component", "migrate")
}

var _ io.Closer = (*goose.Provider)(nil)
