package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TestMapErrUnreachable: the failures of a database that is away map to
// portal.ErrDatabaseUnavailable (a 503), and the store's other errors do
// not. The refused connection and the ended session are real ones.
func TestMapErrUnreachable(t *testing.T) {
	ctx, s := start(t)

	// A connection refused: nothing listens on the port any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := pgx.Connect(ctx, "postgres://portal@"+addr+"/portal?sslmode=disable")

	// A session the server ends, as a fast shutdown ends every one (57P01).
	victim, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Release()
	if _, err := s.Pool().Exec(ctx, `SELECT pg_terminate_backend($1)`, victim.Conn().PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	var one int
	terminated := victim.QueryRow(ctx, `SELECT 1`).Scan(&one)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, leaving := s.Pool().Exec(canceled, `SELECT 1`)

	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"session terminated", terminated, true},
		{"connection failure 08006", &pgconn.PgError{Code: "08006"}, true},
		{"cannot connect now 57P03", &pgconn.PgError{Code: "57P03"}, true},
		{"crash shutdown 57P02", &pgconn.PgError{Code: "57P02"}, true},
		{"broken connection", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"pool wait past its deadline", context.DeadlineExceeded, true},
		{"no row", pgx.ErrNoRows, false},
		{"duplicate", &pgconn.PgError{Code: codeUniqueViolation}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"the client left", leaving, false},
		{"anything else", errors.New("something else"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error to map: the setup did not fail as meant")
			}
			got := mapErr("op", tt.err)
			if errors.Is(got, portal.ErrUnavailable) != tt.want || errors.Is(got, portal.ErrDatabaseUnavailable) != tt.want {
				t.Errorf("mapErr(%q) = %q: unavailable %v, want %v", tt.err, got, !tt.want, tt.want)
			}
			if tt.want && !errors.Is(got, tt.err) {
				t.Errorf("mapErr(%q) = %q lost the driver's error, which the log line shows", tt.err, got)
			}
		})
	}
}
