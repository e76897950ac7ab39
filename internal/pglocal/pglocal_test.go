package pglocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestTemporary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"given folder", tempDir},
		{"own folder", func(*testing.T) string { return "" }},
		{"folder too deep for a socket", func(t *testing.T) string {
			return filepath.Join(tempDir(t), strings.Repeat("deep/", 10), strings.Repeat("x", 40))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.dir(t)
			s := start(t, Options{Dir: dir, Temporary: true})
			if n := queryInt(t, s, "postgres", "SELECT 41 + 1"); n != 42 {
				t.Errorf("SELECT 41 + 1 = %d", n)
			}
			if len(s.socket)+len("/.s.PGSQL.5432") > maxSocketPath {
				t.Errorf("socket folder %s is too long for a socket", s.socket)
			}
			pid := s.cmd.Process.Pid
			if err := s.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			if alive(pid) {
				t.Errorf("postgres (pid %d) still runs after Stop", pid)
			}
			for _, path := range []string{s.data, s.logPath, s.socket} {
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s remains after Stop (stat: %v)", path, err)
				}
			}
			if s.madeDir {
				if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s remains after Stop (stat: %v)", s.dir, err)
				}
			}
		})
	}
}

func TestPersistent(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)

	s := start(t, Options{Dir: dir})
	if err := s.CreateDatabase(t.Context(), "portal"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDatabase(t.Context(), "portal"); err != nil {
		t.Fatalf("creating an existing database: %v", err)
	}
	queryInt(t, s, "portal", "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7); SELECT 0")
	stop(t, s)

	s = start(t, Options{Dir: dir})
	if n := queryInt(t, s, "portal", "SELECT n FROM kept"); n != 7 {
		t.Errorf("after a restart, kept holds %d, want 7", n)
	}
	stop(t, s)

	s = start(t, Options{Dir: dir, Reset: true})
	if n := queryInt(t, s, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'portal'"); n != 0 {
		t.Errorf("after Reset, database portal still exists")
	}
	stop(t, s)
}

func TestLeftover(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// leave runs after a first server has started on the folder, and
		// leaves the folder as an ended process might have.
		leave func(t *testing.T, first *Server)
	}{
		{"server left running", func(*testing.T, *Server) {}},
		{"lock file of an ended process", func(t *testing.T, first *Server) {
			stop(t, first)
			cmd := first.command(exec.Command("true"))
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			writePIDFile(t, first, cmd.Process.Pid)
		}},
		{"lock file naming another live program", func(t *testing.T, first *Server) {
			stop(t, first)
			cmd := first.command(exec.Command("sleep", "60"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			})
			writePIDFile(t, first, cmd.Process.Pid)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			first := start(t, Options{Dir: dir})
			firstPID := first.cmd.Process.Pid
			tt.leave(t, first)

			second := start(t, Options{Dir: dir})
			if alive(firstPID) {
				t.Errorf("first postgres (pid %d) still runs", firstPID)
			}
			queryInt(t, second, "postgres", "SELECT 1")
			stop(t, second)
		})
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts func(t *testing.T) Options
		want string
	}{
		{"no folder", func(*testing.T) Options { return Options{} }, "Options.Dir is empty"},
		{"folder the server may not enter", func(t *testing.T) Options {
			if os.Geteuid() != 0 {
				t.Skip("only root hands the server to another user")
			}
			return Options{Dir: filepath.Join(t.TempDir(), "data")}
		}, "may not enter"},
		{"no binaries", func(t *testing.T) Options {
			return Options{Temporary: true, Bin: t.TempDir()}
		}, "initdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Start(t.Context(), tt.opts(t))
			if err == nil {
				_ = s.Stop(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestURL(t *testing.T) {
	t.Setenv("PGPORT", "6543") // must not override the URL's port
	tests := []struct {
		name, socket, database string
	}{
		{"plain", "/tmp/pg123", "postgres"},
		{"odd characters", "/tmp/a b&c=d+e%f?", "my db/?&"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{socket: tt.socket}
			cfg, err := pgx.ParseConfig(s.URL(tt.database))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tt.socket || cfg.Port != port || cfg.Database != tt.database || cfg.User != "postgres" {
				t.Errorf("URL %s parses to host %q port %d database %q user %q",
					s.URL(tt.database), cfg.Host, cfg.Port, cfg.Database, cfg.User)
			}
		})
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	// Search patterns, under the test's root, shaped like those of
	// FindBinaries: Debian's versioned folders, Homebrew's, then a plain one.
	patterns := []string{"lib/postgresql/*/bin", "homebrew/opt/postgresql@*/bin", "homebrew/bin"}
	tests := []struct {
		name  string
		path  []string          // folders on PATH, under the test's root
		files map[string]string // folder -> programs in it, under the test's root
		want  string            // folder, under the test's root; empty for ErrNoBinaries
	}{
		{
			name:  "nothing installed",
			path:  []string{"bin"},
			files: map[string]string{"bin": "psql", "homebrew/bin": "initdb pg_ctl"},
		},
		{
			name:  "PATH first",
			path:  []string{"empty", "bin"},
			files: map[string]string{"bin": "initdb pg_ctl postgres", "lib/postgresql/17/bin": "initdb pg_ctl postgres"},
			want:  "bin",
		},
		{
			name: "newest complete version",
			files: map[string]string{
				"lib/postgresql/9.6/bin": "initdb pg_ctl postgres",
				"lib/postgresql/15/bin":  "initdb pg_ctl postgres",
				"lib/postgresql/10/bin":  "initdb pg_ctl postgres",
				"lib/postgresql/17/bin":  "psql",
				"homebrew/bin":           "initdb pg_ctl postgres",
			},
			want: "lib/postgresql/15/bin",
		},
		{
			name: "later pattern",
			files: map[string]string{
				"homebrew/opt/postgresql@14/bin": "initdb pg_ctl postgres",
				"homebrew/opt/postgresql@16/bin": "initdb pg_ctl postgres",
			},
			want: "homebrew/opt/postgresql@16/bin",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			under := func(names []string) []string {
				var paths []string
				for _, n := range names {
					paths = append(paths, filepath.Join(root, n))
				}
				return paths
			}
			for dir, programs := range tt.files {
				for _, p := range strings.Fields(programs) {
					writeProgram(t, filepath.Join(root, dir, p))
				}
			}

			got, err := findBinaries(under(tt.path), under(patterns))
			if tt.want != "" {
				if want := filepath.Join(root, tt.want); got != want || err != nil {
					t.Errorf("findBinaries = %q, %v; want %q", got, err, want)
				}
				return
			}
			if !errors.Is(err, ErrNoBinaries) {
				t.Fatalf("findBinaries = %q, %v; want ErrNoBinaries", got, err)
			}
			for _, hint := range []string{
				"apt-get install postgresql", "dnf install postgresql-server",
				"brew install postgresql@16", "DATABASE_URL", filepath.Join(root, patterns[0]),
			} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("error %q does not mention %q", err, hint)
				}
			}
		})
	}
}

// tempDir returns a folder removed after the test. Unlike t.TempDir's, it
// and its parents may be entered by everyone, including the postgres user
// that the server runs as when tests run as root.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pglocal-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// start starts a server that is stopped at the latest when the test ends.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// stop stops s and checks that its server is gone.
func stop(t *testing.T, s *Server) {
	t.Helper()
	pid := s.cmd.Process.Pid
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("postgres (pid %d) still runs after Stop", pid)
	}
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid remains after Stop (stat: %v)", err)
	}
}

// queryInt runs sql, whose last statement returns one integer, on database.
func queryInt(t *testing.T, s *Server, database, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.URL(database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	results, err := conn.PgConn().Exec(t.Context(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	last := results[len(results)-1]
	if len(last.Rows) != 1 {
		t.Fatalf("%s: the last statement returned %d rows, want one", sql, len(last.Rows))
	}
	var n int
	if _, err := fmt.Sscan(string(last.Rows[0][0]), &n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// writePIDFile writes a postmaster.pid naming pid, as a server of s's that
// ended without cleaning up would have left it.
func writePIDFile(t *testing.T, s *Server, pid int) {
	t.Helper()
	content := fmt.Sprintf("%d\n%s\n%d\n%d\n%s\n\n  5432001         0\nready   \n",
		pid, s.data, time.Now().Unix(), port, s.socket)
	path := filepath.Join(s.data, "postmaster.pid")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.chown(path); err != nil {
		t.Fatal(err)
	}
}

func writeProgram(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether a process with this id exists.
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}
