package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// A setting is one configuration value: read from its environment variable,
// overridden by its flag, checked by parse. Every subcommand declares the
// settings it reads, so --help lists exactly those.
type setting struct {
	env    string // e.g. PORTAL_LISTEN
	flag   string // e.g. listen
	def    string
	usage  string
	secret bool // never echo the value in an error
	isBool bool // a switch: --flag alone turns it on
	parse  func(string) error
}

// configError is a setting that is missing or malformed. Its message is one
// line naming the variable, what was given and what is expected.
type configError struct {
	name, given, want string
}

func (e *configError) Error() string {
	return fmt.Sprintf("%s=%s: %s", e.name, e.given, e.want)
}

// errMissing is a required setting left empty.
var errMissing = errors.New("required, but not set")

// errUsage marks a command line the user must correct (exit status 2).
var errUsage = errors.New("usage")

// parseSettings reads settings from the environment and args. It returns the
// remaining arguments, flag.ErrHelp when help was asked for (after printing
// it to out), or a *configError.
func parseSettings(cmd, synopsis string, settings []setting, args []string, getenv func(string) string, out io.Writer) ([]string, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	values := make(map[string]func() string, len(settings))
	for _, s := range settings {
		if s.isBool {
			b := fs.Bool(s.flag, false, s.usage)
			values[s.flag] = func() string { return strconv.FormatBool(*b) }
		} else {
			v := fs.String(s.flag, "", s.usage)
			values[s.flag] = func() string { return *v }
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(out, cmd, synopsis, settings)
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%w: %s: %s (see `portal %s --help`)", errUsage, cmd, err.Error(), cmd)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// A malformed value is reported before a missing one: it is the likelier
	// typo, and the one the person is looking at.
	var missing error
	for _, s := range settings {
		name, v := s.env, s.def
		if e := getenv(s.env); s.env != "" && e != "" {
			v = e
		}
		if given[s.flag] {
			name, v = "--"+s.flag, values[s.flag]()
		}
		if err := s.parse(v); err != nil {
			if errors.Is(err, errMissing) {
				if missing == nil {
					missing = &configError{name: name, given: `""`, want: err.Error()}
				}
				continue
			}
			shown := strconv.Quote(v)
			if s.secret && v != "" {
				shown = "(hidden)"
			}
			return nil, &configError{name: name, given: shown, want: err.Error()}
		}
	}
	if missing != nil {
		return nil, missing
	}
	return fs.Args(), nil
}

func printUsage(w io.Writer, cmd, synopsis string, settings []setting) {
	fmt.Fprintf(w, "Usage: portal %s\n\n%s\n", cmd, synopsis)
	if len(settings) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSettings (flag, environment variable, default):\n")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "none"
		}
		env := s.env
		if env == "" {
			env = "no variable"
		}
		fmt.Fprintf(w, "  --%s, %s (default %s)\n      %s\n", s.flag, env, def, s.usage)
	}
}

// The parsers below bind a setting to a field; each error says what is expected.

func required(next func(string) error) func(string) error {
	return func(v string) error {
		if strings.TrimSpace(v) == "" {
			return errMissing
		}
		return next(v)
	}
}

func stringVar(p *string) func(string) error {
	return func(v string) error { *p = strings.TrimSpace(v); return nil }
}

// listVar takes a comma-separated list; items are trimmed, empty ones
// dropped. Items may hold spaces (group names often do).
func listVar(p *[]string) func(string) error {
	return func(v string) error {
		*p = nil
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				*p = append(*p, f)
			}
		}
		return nil
	}
}

// wordsVar takes a list separated by spaces or commas.
func wordsVar(p *[]string) func(string) error {
	return func(v string) error {
		*p = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		return nil
	}
}

func addrVar(p *string) func(string) error {
	return func(v string) error {
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return errors.New("want host:port, for example 127.0.0.1:8080 or :8080")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return errors.New("want a port number from 0 to 65535, for example 127.0.0.1:8080")
		}
		if strings.ContainsAny(host, " /") {
			return errors.New("want host:port, for example 127.0.0.1:8080 or :8080")
		}
		*p = v
		return nil
	}
}

func durationVar(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("want a positive duration such as 30s, 15m or 12h")
		}
		*p = d
		return nil
	}
}

func levelVar(p *slog.Level) func(string) error {
	return func(v string) error {
		if err := p.UnmarshalText([]byte(v)); err != nil {
			return errors.New("want one of debug, info, warn, error")
		}
		return nil
	}
}

func intVar(p *int, lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("want a whole number from %d to %d", lo, hi)
		}
		*p = n
		return nil
	}
}

// urlVar accepts an absolute http(s) URL; an empty value leaves p nil.
func urlVar(p **url.URL) func(string) error {
	return func(v string) error {
		if v == "" {
			*p = nil
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("want an absolute http or https URL, for example https://credentials.2i2c.org")
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		*p = u
		return nil
	}
}

// databaseURLVar accepts a PostgreSQL URL or key=value connection string.
func databaseURLVar(p *string) func(string) error {
	return func(v string) error {
		v = strings.TrimSpace(v)
		if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") && !strings.Contains(v, "=") {
			return errors.New("want a PostgreSQL connection URL, for example postgres://portal@db:5432/portal?sslmode=require")
		}
		*p = v
		return nil
	}
}

// fileVar accepts the path of a readable file; empty is allowed.
func fileVar(p *string) func(string) error {
	return func(v string) error {
		if v != "" {
			if _, err := os.Stat(v); err != nil {
				return errors.New("want the path of a readable file; " + err.Error())
			}
		}
		*p = v
		return nil
	}
}

func boolVar(p *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*p = b
		return nil
	}
}
