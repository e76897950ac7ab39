// Package agetest finds the age command-line tools for tests that run the
// customer's documented commands: of the version of filippo.io/age that
// go.mod requires, whatever else the machine has on PATH.
//
// Only tests import it, so no binary reaches its functions: `deadcode ./...`
// lists them as unreachable, and that is expected.
package agetest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// module is the module path of age, as go.mod requires it.
const module = "filippo.io/age"

// toolsDir is where `make test` installs the age commands, relative to the
// module's root (git-ignored).
const toolsDir = ".tools/bin"

// Commands returns the paths of age and age-keygen of the version go.mod
// requires, looked up in the project's .tools/bin (where `make test`
// installs them), then on PATH, then in the go command's GOPATH/bin. A pair
// of another version is passed over: Debian and Ubuntu ship age 1.1.1, which
// knows no post-quantum keys, and the tests check the age customers are told
// to install. A test fails, not skips, when no pair of that version is
// found, naming what it found and the command that installs the right one;
// PORTAL_TEST_NO_AGE_CLI=1 skips on purpose, for machines that cannot
// install them.
func Commands(t testing.TB) (age, keygen string) {
	t.Helper()
	if os.Getenv("PORTAL_TEST_NO_AGE_CLI") == "1" {
		t.Skip("PORTAL_TEST_NO_AGE_CLI=1: not testing with the age command")
	}
	root, gopath, err := goEnv()
	if err != nil {
		t.Fatal(err)
	}
	want, err := requiredVersion(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	age, keygen, err = find(candidates(root, gopath), want, filepath.Join(root, toolsDir))
	if err != nil {
		t.Fatal(err)
	}
	return age, keygen
}

// requiredVersion is the version of filippo.io/age that the go.mod file at
// path requires, such as "v1.3.2".
func requiredVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("agetest: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == "require" {
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[0] == module {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("agetest: %s: %w", path, err)
	}
	return "", fmt.Errorf("agetest: %s does not require %s", path, module)
}

// goEnv is the module's root folder and the first entry of GOPATH, as the go
// command sees them from the test's folder.
func goEnv() (root, gopath string, err error) {
	out, err := exec.Command("go", "env", "GOMOD", "GOPATH").Output()
	if err != nil {
		return "", "", fmt.Errorf("agetest: go env GOMOD GOPATH: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !filepath.IsAbs(lines[0]) {
		return "", "", fmt.Errorf("agetest: not inside the module (go env GOMOD GOPATH printed %q)", out)
	}
	gopath = lines[1]
	if list := filepath.SplitList(gopath); len(list) > 0 && list[0] != "" {
		gopath = list[0]
	} else {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Dir(lines[0]), gopath, nil
}

// candidates are the folders to look in, in order and each once: the
// project's tools, PATH (its absolute entries, as exec.LookPath would take
// them), GOPATH/bin.
func candidates(root, gopath string) []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(dir string) {
		if dir = filepath.Clean(dir); filepath.IsAbs(dir) && !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	add(filepath.Join(root, toolsDir))
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir != "" {
			add(dir)
		}
	}
	add(filepath.Join(gopath, "bin"))
	return dirs
}

// find returns age and age-keygen from the first of dirs that holds both at
// version want. Otherwise its error lists what it found and says how to
// install want into tools.
func find(dirs []string, want, tools string) (age, keygen string, err error) {
	var found []string
	for _, dir := range dirs {
		age, keygen := filepath.Join(dir, "age"), filepath.Join(dir, "age-keygen")
		av, aerr := version(age)
		kv, kerr := version(keygen)
		if errors.Is(aerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist) {
			continue
		}
		if aerr == nil && kerr == nil && av == want && kv == want {
			return age, keygen, nil
		}
		found = append(found, fmt.Sprintf("%s (age %.40s, age-keygen %.40s)", dir, describe(av, aerr), describe(kv, kerr)))
	}
	seen := "none"
	if len(found) > 0 {
		seen = strings.Join(found, "; ")
	}
	return "", "", fmt.Errorf("the tests need age and age-keygen %s, the version of %s that go.mod requires, "+
		"and found no such pair in %s, on PATH or in GOPATH/bin (found: %s). Install them with\n"+
		"\tmake tools\n"+
		"or\n"+
		"\tGOBIN=%s go install %s/cmd/...@%s\n"+
		"or set PORTAL_TEST_NO_AGE_CLI=1 to skip the tests that run them.",
		want, module, tools, seen, tools, module, want)
}

// version is what the command at path prints for --version, or an error
// wrapping os.ErrNotExist when there is no such file.
func version(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func describe(v string, err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "missing"
	case err != nil:
		return "unreadable version"
	}
	return v
}
