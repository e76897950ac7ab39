// Package agetest finds the age command-line tools for tests that run the
// customer's documented commands.
//
// Only tests import it, so no binary reaches its functions: `deadcode ./...`
// lists them as unreachable, and that is expected.
package agetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Commands returns the paths of age and age-keygen, looked up on PATH and
// in the go command's GOPATH/bin. A test fails, not skips, when they are
// missing, saying how to install them; PORTAL_TEST_NO_AGE_CLI=1 skips on
// purpose, for machines that cannot install them.
func Commands(t testing.TB) (age, keygen string) {
	t.Helper()
	if os.Getenv("PORTAL_TEST_NO_AGE_CLI") == "1" {
		t.Skip("PORTAL_TEST_NO_AGE_CLI=1: not testing with the age command")
	}
	bin := filepath.Join(goPath(), "bin")
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		p := filepath.Join(bin, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is neither on PATH nor in %s. Install the age commands with\n"+
				"\tgo install filippo.io/age/cmd/...@v1.3.2\n"+
				"or set PORTAL_TEST_NO_AGE_CLI=1 to skip this test.", name, bin)
		}
		return p
	}
	return find("age"), find("age-keygen")
}

// goPath is the first entry of the go command's GOPATH.
func goPath() string {
	gp := os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gp = strings.TrimSpace(string(out))
	}
	if list := filepath.SplitList(gp); len(list) > 0 && list[0] != "" {
		return list[0]
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go")
}
