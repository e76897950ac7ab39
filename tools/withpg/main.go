// Command withpg runs a command with DATABASE_URL naming a throwaway
// PostgreSQL server, which it starts from this machine's binaries and removes
// when the command ends, however it ends:
//
//	go run ./tools/withpg -- go test ./...
//
// When DATABASE_URL is set already, withpg runs the command as it is. Either
// way withpg exits with the command's status.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/2i2c-org/credential-portal/internal/pglocal"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: withpg [--] command [argument...]")
		return 2
	}
	if os.Getenv("DATABASE_URL") != "" {
		return execute(args)
	}

	// Registered before the server starts, so that a signal cannot kill
	// withpg between starting the server and stopping it.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)

	ctx, stopStart := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The server's start-up line says which PostgreSQL runs, for the logs.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).With("program", "withpg")
	server, err := pglocal.Start(ctx, pglocal.Options{Temporary: true, Logger: logger})
	interrupted := ctx.Err() != nil
	stopStart()
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}

	status := 1
	if !interrupted {
		status = runWithServer(args, server.URL("postgres"), signals)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := server.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		if status == 0 {
			status = 1
		}
	}
	return status
}

// runWithServer runs the command with DATABASE_URL set to url, passing on the
// signals withpg receives, and returns its exit status.
func runWithServer(args []string, url string, signals <-chan os.Signal) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 127
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-signals:
				_ = cmd.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return exitStatus(err)
}

// exitStatus turns a command's end into a status as a shell reports it:
// 128 plus the signal's number for a command killed by one.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	exit, ok := errors.AsType[*exec.ExitError](err)
	if !ok {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return exit.ExitCode()
}

// execute replaces withpg with the command, which then owns the terminal and
// the exit status without a go-between.
func execute(args []string) int {
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 127
	}
	err = syscall.Exec(path, args, os.Environ())
	fmt.Fprintln(os.Stderr, "withpg:", err)
	return 126
}
