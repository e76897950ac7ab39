package pglocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries means no folder on this machine holds initdb, pg_ctl and postgres.
var ErrNoBinaries = errors.New("pglocal: no PostgreSQL server binaries (initdb, pg_ctl, postgres) found")

// FindBinaries returns a folder holding initdb, pg_ctl and postgres. It looks
// on PATH first, then in the newest /usr/lib/postgresql/*/bin, then in
// Homebrew's folders. Returns an error wrapping ErrNoBinaries, which says what
// to install, when none has all three.
func FindBinaries() (string, error) {
	return findBinaries(filepath.SplitList(os.Getenv("PATH")), []string{
		"/usr/lib/postgresql/*/bin",
		"/opt/homebrew/opt/postgresql@*/bin",
		"/usr/local/opt/postgresql@*/bin",
		"/opt/homebrew/bin",
		"/usr/local/bin",
	})
}

// findBinaries searches the folders of path in order, then those matching
// each of patterns, newest version first within a pattern.
func findBinaries(path, patterns []string) (string, error) {
	for _, dir := range path {
		if dir != "" && hasServer(dir) {
			return dir, nil
		}
	}
	for _, pattern := range patterns {
		dirs, err := filepath.Glob(pattern)
		if err != nil {
			return "", fmt.Errorf("pglocal: find binaries: %w", err)
		}
		slices.SortFunc(dirs, func(a, b string) int { return slices.Compare(version(b), version(a)) })
		for _, dir := range dirs {
			if hasServer(dir) {
				return dir, nil
			}
		}
	}
	return "", fmt.Errorf("%w on PATH or in %s: install PostgreSQL "+
		"(Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; "+
		"macOS: brew install postgresql@16), or set DATABASE_URL to any PostgreSQL server",
		ErrNoBinaries, strings.Join(patterns, ", "))
}

// version reads the numbers in a folder name, so that 9.6 sorts before 15.
func version(dir string) []int {
	var v []int
	notDigit := func(r rune) bool { return r < '0' || r > '9' }
	for _, f := range strings.FieldsFunc(dir, notDigit) {
		n, _ := strconv.Atoi(f)
		v = append(v, n)
	}
	return v
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}
