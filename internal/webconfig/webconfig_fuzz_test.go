package webconfig

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
)

// FuzzMerge parses a base web config as the agent does and merges into it
// the users of a document as the portal serves it. Whatever ParseWebConfig
// accepts must be a file exporter-toolkit's own web.Validate accepts (TLS
// aside: the certificate files the fuzzer names do not exist), the merge of
// any users ParseUsers accepts must succeed, and the merged file must pass
// web.Validate whenever the base does, keep every base user with its hash
// and add each portal user unless the base has one of that name. Every
// refusal wraps ErrInvalid and fits on one line. The seeds
// (testdata/fuzz/FuzzMerge) hold real bcrypt hashes, the base shapes 2i2c
// clusters use and the tricks a YAML document allows.
func FuzzMerge(f *testing.F) {
	// exporter-toolkit reads TLS files relative to the config file: a real
	// certificate beside it lets the seeds with TLS settings pass.
	dir := f.TempDir()
	writeCert(f, dir)
	path := filepath.Join(dir, "web.yml")
	validate := func(t *testing.T, doc []byte) error {
		t.Helper()
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		return web.Validate(path)
	}
	f.Fuzz(func(t *testing.T, baseDoc, usersDoc []byte) {
		base, err := ParseWebConfig(baseDoc)
		if err != nil {
			checkInvalid(t, "ParseWebConfig", err)
			return
		}
		baseErr := validate(t, baseDoc)
		if baseErr != nil && !base.cfg.TLSConfig.IsEnabled() {
			t.Fatalf("ParseWebConfig accepts a base without TLS that web.Validate refuses: %v\n%s", baseErr, baseDoc)
		}
		users, expires, err := ParseUsers(usersDoc)
		if err != nil {
			checkInvalid(t, "ParseUsers", err)
			users, expires = Users{}, Expiries{}
		}
		m, err := Merge(base, users, expires)
		if err != nil {
			t.Fatalf("Merge of a valid base and valid users: %v\nbase:\n%s\nusers:\n%s", err, baseDoc, usersDoc)
		}
		if err := validate(t, m.Doc); err != nil && (baseErr == nil || err.Error() != baseErr.Error()) {
			t.Fatalf("web.Validate refuses the merged file (the base: %v): %v\n%s", baseErr, err, m.Doc)
		}
		got, err := parseStrict(m.Doc)
		if err != nil {
			t.Fatalf("the merged file does not parse: %v\n%s", err, m.Doc)
		}
		for name, h := range base.Users() {
			if string(got.Users[name]) != h {
				t.Fatalf("base user %q lost or changed by the merge\n%s", name, m.Doc)
			}
		}
		for name, h := range users {
			_, clash := base.cfg.Users[name]
			switch {
			case clash && !slices.Contains(m.Clashes, name):
				t.Fatalf("portal user %q clashes with a base user but is not reported", name)
			case !clash && (string(got.Users[name]) != h || !slices.Contains(m.Added, name)):
				t.Fatalf("portal user %q not added\n%s", name, m.Doc)
			}
		}
		if len(got.Users) != len(base.cfg.Users)+len(m.Added) {
			t.Fatalf("the merged file has %d users, want %d", len(got.Users), len(base.cfg.Users)+len(m.Added))
		}
	})
}

// checkInvalid checks that err, a refusal by fn, wraps ErrInvalid and fits
// on one line, as the agent logs it.
func checkInvalid(t *testing.T, fn string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%s: %v, want an error wrapping ErrInvalid", fn, err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("%s: the error is more than one line: %q", fn, err)
	}
}
