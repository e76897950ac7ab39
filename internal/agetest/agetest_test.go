package agetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAge writes into a new folder the age 1.1.1 of Debian and Ubuntu as far
// as the tests can tell: it reports version v1.1.1 and refuses -pq.
func fakeAge(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"if [ \"$1\" = --version ]; then echo v1.1.1; exit 0; fi\n" +
		"echo \"$(basename \"$0\"): flag provided but not defined: -pq\" >&2; exit 1\n"
	for _, name := range []string{"age", "age-keygen"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCommandsPassOverAnOlderAgeFirstOnPath: with a distribution's age
// 1.1.1 first on the inherited PATH, the tests still get the age that
// go.mod requires, v1.3.2, and age-keygen -pq works.
func TestCommandsPassOverAnOlderAgeFirstOnPath(t *testing.T) {
	fake := fakeAge(t)
	t.Setenv("PATH", fake+string(os.PathListSeparator)+os.Getenv("PATH"))

	age, keygen := Commands(t)
	for _, p := range []string{age, keygen} {
		if filepath.Dir(p) == fake {
			t.Errorf("%s is the fake age 1.1.1 first on PATH", p)
		}
		out, err := exec.Command(p, "--version").Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != "v1.3.2" {
			t.Errorf("%s --version = %q, %v; want v1.3.2, the version go.mod requires", p, got, err)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command(keygen, "-pq", "-o", filepath.Join(dir, "key.txt")).CombinedOutput(); err != nil {
		t.Errorf("age-keygen -pq: %v\n%s", err, out)
	}
}

// TestCommandsSayHowToInstallTheRequiredAge: when only another version is
// found, the failure names it and gives the exact command that installs the
// right one into the project.
func TestCommandsSayHowToInstallTheRequiredAge(t *testing.T) {
	t.Parallel()
	fake := fakeAge(t)
	tools := filepath.Join(t.TempDir(), toolsDir)
	_, _, err := find([]string{fake, t.TempDir()}, "v1.3.2", tools)
	if err == nil {
		t.Fatal("the fake age 1.1.1 was taken for v1.3.2")
	}
	for _, want := range []string{
		"GOBIN=" + tools + " go install filippo.io/age/cmd/...@v1.3.2",
		"make tools",
		fake + " (age v1.1.1, age-keygen v1.1.1)",
		"PORTAL_TEST_NO_AGE_CLI=1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the failure does not say %q:\n%s", want, err)
		}
	}
}

// TestRequiredVersionReadsGoMod: the version the tests want is the one the
// portal is built with.
func TestRequiredVersionReadsGoMod(t *testing.T) {
	t.Parallel()
	got, err := requiredVersion("../../go.mod")
	if err != nil || got != "v1.3.2" {
		t.Errorf("requiredVersion(go.mod) = %q, %v; want v1.3.2", got, err)
	}
	one := filepath.Join(t.TempDir(), "go.mod")
	if err := os.WriteFile(one, []byte("module x\n\nrequire filippo.io/age v1.9.0 // indirect\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := requiredVersion(one); err != nil || got != "v1.9.0" {
		t.Errorf("one-line require: %q, %v", got, err)
	}
}
