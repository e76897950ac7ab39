// Command portal is the 2i2c credential portal: customers sign in with OIDC
// and request credentials for a cluster's Prometheus, staff approve them, and
// the portal issues them encrypted with age and publishes them to the cluster.
//
// Usage:
//
//	portal serve            run the web server
//	portal migrate up       apply database migrations
//	portal migrate status   show which migrations are applied
//	portal dev              run everything locally for development
//	portal agent            keep a Prometheus web config in step (sidecar)
//	portal audit verify     check the audit log's hash chain
//	portal healthcheck      check a running portal's readiness
//	portal version          print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "devel"

const usage = `portal: the 2i2c credential portal

Usage:
  portal serve            run the web server (needs DATABASE_URL)
  portal migrate up       apply database migrations
  portal migrate status   show which migrations are applied
  portal audit verify     check the audit log's hash chain [--since ID]
  portal dev              run everything locally for development: a private
                          PostgreSQL, a development sign-in, demo data
  portal healthcheck      exit 0 if a running portal is ready (for containers)
  portal agent            keep a Prometheus web config in step with the portal
                          (a sidecar beside each cluster's Prometheus)
  portal version          print the version

Run 'portal COMMAND --help' for a command's settings.
`

// env is what a command reads from the outside world, so tests can run
// commands in-process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], env{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr}))
}

// commands are the subcommands by name.
var commands = map[string]func(context.Context, env, []string) error{
	"serve":       cmdServe,
	"migrate":     cmdMigrate,
	"audit":       cmdAudit,
	"dev":         cmdDev,
	"agent":       cmdAgent,
	"healthcheck": cmdHealthcheck,
	"version":     cmdVersion,
	"--version":   cmdVersion,
}

// run executes one command and returns the process exit status: 0 on
// success, 2 for a usage or configuration error, 1 for any other failure.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return 2
	}
	var err error
	cmd, rest := args[0], args[1:]
	switch run, ok := commands[cmd]; {
	case ok:
		err = run(ctx, e, rest)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(e.stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q; run `portal help`", errUsage, cmd)
	}
	var cfgErr *configError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &cfgErr), errors.Is(err, errUsage):
		fmt.Fprintf(e.stderr, "portal: %s\n", err.Error())
		return 2
	default:
		fmt.Fprintf(e.stderr, "portal: %s\n", err.Error())
		return 1
	}
}

func cmdVersion(_ context.Context, e env, args []string) error {
	if _, err := parseSettings("version", "Print the portal's version.", nil, args, e.getenv, e.stdout); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "portal %s\n", version)
	return nil
}
