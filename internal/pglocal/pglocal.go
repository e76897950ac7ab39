// Package pglocal runs a private PostgreSQL server from the binaries installed
// on this machine, reachable only through a unix socket: a lasting one for
// `portal dev` and throwaway ones for tests.
package pglocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// port only names the socket file; the socket lives in a folder of its
	// own, so it never meets another server's.
	port = 5432
	// maxSocketPath is the longest socket file path every unix accepts:
	// sun_path holds 104 bytes on macOS, 108 on Linux, with a trailing NUL.
	maxSocketPath = 103
	// startTimeout bounds the wait for a new server to accept connections.
	startTimeout = 30 * time.Second
)

// Options says where a server keeps its files and how long they live.
type Options struct {
	// Dir holds the data (Dir/pgdata), the server log (Dir/postgres.log) and,
	// when the path is short enough, the socket (Dir/socket); otherwise the
	// socket goes to a short temporary folder. When Dir is empty, Temporary
	// must be set and Start makes a temporary folder.
	Dir string
	// Temporary starts from empty data, trades durability for speed, and
	// removes everything the server wrote when it stops.
	Temporary bool
	// Reset wipes existing data before the server starts.
	Reset bool
	// Bin is the folder holding initdb and postgres; FindBinaries picks one
	// when it is empty.
	Bin string
	// Logger receives the server's life events; nil discards them.
	Logger *slog.Logger
}

// Server is a running PostgreSQL server started by Start. Its methods are safe
// for concurrent use.
type Server struct {
	bin, dir, data, socket, logPath string
	madeDir, tempSocket, temporary  bool
	cred                            *syscall.Credential // nil: run as this process's user
	logger                          *slog.Logger

	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for
	waitErr error         // cmd's exit, readable once exited is closed

	stopOnce sync.Once
	stopErr  error
}

// Start initializes the data folder if it has no data yet and starts a server
// on it, returning once the server accepts connections. A server left running
// on the same data by an earlier, killed process is stopped first. When run as
// root, the server runs as the postgres user, who then owns Dir. Returns
// ErrNoBinaries (wrapped) when PostgreSQL is not installed, and an error
// quoting the end of the server log when the server does not come up within
// 30 seconds.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{bin: opts.Bin, temporary: opts.Temporary, logger: opts.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.bin == "" {
		bin, err := FindBinaries()
		if err != nil {
			return nil, err
		}
		s.bin = bin
	}
	if os.Geteuid() == 0 {
		if err := s.runAsPostgres(); err != nil {
			return nil, err
		}
	}
	if err := s.start(ctx, opts.Dir, opts.Reset || opts.Temporary); err != nil {
		// The caller's ctx may be what ended the start; cleaning up needs its own.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return nil, errors.Join(err, s.Stop(stopCtx))
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, dir string, reset bool) error {
	if err := s.makeDir(dir); err != nil {
		return err
	}
	if err := s.stopLeftover(ctx); err != nil {
		return err
	}
	if reset {
		if err := os.RemoveAll(s.data); err != nil {
			return fmt.Errorf("pglocal: reset: %w", err)
		}
	}
	if err := s.initdb(ctx); err != nil {
		return err
	}
	if err := s.makeSocketDir(); err != nil {
		return err
	}
	if err := s.launch(); err != nil {
		return err
	}
	return s.waitReady(ctx)
}

// runAsPostgres makes the server's programs run as the postgres user, because
// PostgreSQL refuses to run as root.
func (s *Server) runAsPostgres() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pglocal: running as root needs a postgres user to run the server as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return fmt.Errorf("pglocal: postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return fmt.Errorf("pglocal: postgres group id %q: %w", u.Gid, err)
	}
	s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	return nil
}

func (s *Server) makeDir(dir string) error {
	switch {
	case dir != "":
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
		s.dir = abs
	case s.temporary:
		tmp, err := os.MkdirTemp("", "pglocal")
		if err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
		s.dir, s.madeDir = tmp, true
	default:
		return errors.New("pglocal: Options.Dir is empty and the server is not Temporary")
	}
	s.data = filepath.Join(s.dir, "pgdata")
	s.logPath = filepath.Join(s.dir, "postgres.log")
	if err := s.chown(s.dir); err != nil {
		return err
	}
	return s.checkReachable()
}

// checkReachable fails early and plainly when the server's user may not enter
// a folder above Dir; the programs themselves would only say "permission
// denied". Supplementary groups are not counted, as the programs run without.
func (s *Server) checkReachable() error {
	if s.cred == nil {
		return nil
	}
	for dir := s.dir; ; dir = filepath.Dir(dir) {
		info, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
		perm := info.Mode().Perm()
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok && perm&0o001 == 0 &&
			!(st.Uid == s.cred.Uid && perm&0o100 != 0) &&
			!(st.Gid == s.cred.Gid && perm&0o010 != 0) {
			return fmt.Errorf("pglocal: the server runs as user postgres, which may not enter %s: choose a Dir it can reach", dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// stopLeftover stops a server that an earlier run left on the data folder,
// as happens when the process that started it was killed, and removes a lock
// file whose server is gone.
func (s *Server) stopLeftover(ctx context.Context) error {
	pidFile := filepath.Join(s.data, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	if s.servesData(ctx, strings.Split(string(b), "\n")) {
		s.logger.Warn("stopping a postgres left running on the data folder", "data", s.data)
		return s.run(ctx, "pg_ctl", "stop", "-D", s.data, "-m", "fast", "-w")
	}
	// After a crash or reboot the recorded process id may belong to another
	// program, which postgres would take for a live server and refuse to
	// start. Removing the file is safe: postgres's shared-memory check still
	// keeps a second server off data that one is using.
	s.logger.Warn("removing a stale postgres lock file", "file", pidFile)
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pglocal: %w", err)
	}
	return nil
}

// servesData reports whether the server a postmaster.pid describes answers on
// its socket and serves s's data folder.
func (s *Server) servesData(ctx context.Context, pidLines []string) bool {
	if len(pidLines) < 5 || pidLines[4] == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL(pidLines[4], strings.TrimSpace(pidLines[3]), "postgres"))
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var served string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&served); err != nil {
		return false
	}
	a, errA := os.Stat(served)
	b, errB := os.Stat(s.data)
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// initdb creates the data folder unless it holds data already. initdb writes
// beside it and the result is renamed into place, so an interrupted initdb
// never leaves half a cluster to start from.
func (s *Server) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.data, "PG_VERSION")); err == nil {
		return nil
	}
	tmp := s.data + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	args := []string{"-D", tmp, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"}
	if s.temporary {
		args = append(args, "--no-sync")
	}
	s.logger.Debug("initdb", "data", s.data)
	if err := s.run(ctx, "initdb", args...); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.data); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	return nil
}

func (s *Server) makeSocketDir() error {
	s.socket = filepath.Join(s.dir, "socket")
	if len(s.socket)+len("/.s.PGSQL.5432") > maxSocketPath {
		tmp, err := os.MkdirTemp("/tmp", "pg")
		if err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
		s.socket, s.tempSocket = tmp, true
	} else {
		// Whatever a killed server left here is stale now.
		if err := os.RemoveAll(s.socket); err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
		if err := os.Mkdir(s.socket, 0o700); err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
	}
	return s.chown(s.socket)
}

// launch starts the server as a child of this process, so that Stop can wait
// for it to exit.
func (s *Server) launch() error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	defer logFile.Close()
	args := []string{"-D", s.data, "-k", s.socket, "-p", strconv.Itoa(port), "-c", "listen_addresses="}
	if s.temporary {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := s.command(exec.Command(s.path("postgres"), args...))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pglocal: start postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			version := conn.PgConn().ParameterStatus("server_version")
			conn.Close(ctx)
			s.logger.Info("postgres started", "version", version, "bin", s.bin, "socket", s.socket, "log", s.logPath)
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("pglocal: postgres exited while starting (%w); %s", s.exitErr(), s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pglocal: postgres did not accept connections: %w (last attempt: %w); %s", ctx.Err(), err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exitErr says how the server exited; it may only be called once it has.
func (s *Server) exitErr() error {
	if s.waitErr == nil {
		return errors.New("exit status 0")
	}
	return s.waitErr
}

// logTail quotes the end of the server log, where postgres says what went wrong.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("no server log: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-20):]
	return fmt.Sprintf("%s ends:\n%s", s.logPath, strings.Join(lines, "\n"))
}

// URL returns a connection URL, understood by pgx and libpq, for the named
// database on s as the superuser postgres.
func (s *Server) URL(database string) string {
	return connURL(s.socket, strconv.Itoa(port), database)
}

func connURL(socketDir, socketPort, database string) string {
	// Query values are percent-encoded but keep their slashes, for legible
	// logs; libpq reads a "+" literally, so spaces become %20.
	host := strings.NewReplacer("%2F", "/", "+", "%20").Replace(url.QueryEscape(socketDir))
	return "postgres://postgres@/" + url.PathEscape(database) +
		"?host=" + host + "&port=" + url.QueryEscape(socketPort) + "&sslmode=disable"
}

// CreateDatabase creates the named database on s unless it exists already.
// Returns the server's error when it cannot.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pglocal: create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("pglocal: create database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down as `pg_ctl stop -m fast` does: open
// transactions are rolled back, clients disconnected and the data written
// out. If ctx ends first, the server is shut down immediately (or killed) and
// ctx's error returned. Stop returns once the server has exited, then removes
// a Temporary server's files. It also reports a server that had exited with
// an error on its own. Later calls return the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	err := s.halt(ctx)
	if s.tempSocket {
		err = errors.Join(err, os.RemoveAll(s.socket))
	}
	if s.temporary {
		err = errors.Join(err, s.removeFiles())
	}
	if err == nil {
		s.logger.Debug("postgres stopped", "data", s.data)
	}
	return err
}

func (s *Server) halt(ctx context.Context) error {
	if s.cmd == nil {
		return nil
	}
	// Errors mean the server has exited already; exited says how.
	_ = s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("pglocal: postgres: %w", s.waitErr)
		}
		return nil
	case <-ctx.Done():
	}
	// Immediate shutdown still takes the backends down with the server; the
	// kill is for a server that ignores even that.
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	return fmt.Errorf("pglocal: stop postgres: %w", ctx.Err())
}

func (s *Server) removeFiles() error {
	if s.madeDir {
		return os.RemoveAll(s.dir)
	}
	return errors.Join(os.RemoveAll(s.data), os.RemoveAll(s.logPath), os.RemoveAll(s.socket))
}

// run runs one of the short-lived programs, quoting its output when it fails.
func (s *Server) run(ctx context.Context, program string, args ...string) error {
	out, err := s.command(exec.CommandContext(ctx, s.path(program), args...)).CombinedOutput()
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("pglocal: %s: %w", program, ctx.Err())
	case err != nil:
		return fmt.Errorf("pglocal: %s: %w: %s", program, err, bytes.TrimSpace(out))
	}
	return nil
}

// command prepares cmd to run as the server's user, in the data's parent
// folder, and in a process group of its own, so that a Ctrl-C meant for the
// parent does not reach the server before the parent stops it.
func (s *Server) command(cmd *exec.Cmd) *exec.Cmd {
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	if cmd.Cancel != nil {
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
	return cmd
}

func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	return nil
}

func (s *Server) path(program string) string {
	return filepath.Join(s.bin, program)
}
