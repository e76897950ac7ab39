package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// FuzzPortalAnswer hands an agent a portal's answer as it reads one
// (webconfig.ParseUsers) and has it apply the users. An answer holding a
// hash above webconfig.MaxBcryptCost must be refused as such, leaving the
// file as it was; any other answer that parses must give a file
// exporter-toolkit's web.Validate accepts, still holding 2i2c's internal
// user, with no portal hash above the cap. The seeds
// (testdata/fuzz/FuzzPortalAnswer) hold hashes of costs 4, 12, 13 and 31.
func FuzzPortalAnswer(f *testing.F) {
	dir := f.TempDir()
	internal, err := bcrypt.GenerateFromPassword([]byte("internal-pw"), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	cfg := Config{
		PortalURL: &url.URL{Scheme: "http", Host: "portal.invalid"}, Cluster: "awi-ciroh",
		TokenFile: filepath.Join(dir, "token"), BasePath: filepath.Join(dir, "base.yml"), OutPath: filepath.Join(dir, "web.yml"),
		Wait: time.Second, Interval: time.Second, MaxUsers: 50,
	}
	for path, content := range map[string]string{cfg.TokenFile: "sync-token\n", cfg.BasePath: "basic_auth_users:\n  internal: " + string(internal) + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		users, expires, err := webconfig.ParseUsers(answer)
		if err != nil {
			if !errors.Is(err, webconfig.ErrInvalid) {
				t.Fatalf("ParseUsers: %v, want an error wrapping ErrInvalid", err)
			}
			return
		}
		before, _ := os.ReadFile(cfg.OutPath)
		tooCostly := false
		for _, h := range users {
			cost, err := bcrypt.Cost([]byte(h))
			if err != nil {
				t.Fatalf("ParseUsers accepted %q, which is not a bcrypt hash: %v", h, err)
			}
			tooCostly = tooCostly || cost > webconfig.MaxBcryptCost
		}
		err = a.apply(users, expires)
		after, _ := os.ReadFile(cfg.OutPath)
		if tooCostly {
			var r *refusal
			if !errors.As(err, &r) || (r.reason != refusedCost && r.reason != refusedUsers) {
				t.Fatalf("an answer with a hash above cost %d: apply says %v, want a refusal of the cost", webconfig.MaxBcryptCost, err)
			}
		}
		if err != nil {
			if !bytes.Equal(before, after) {
				t.Fatalf("apply refused the answer (%v) but changed the file", err)
			}
			return
		}
		if err := web.Validate(cfg.OutPath); err != nil {
			t.Fatalf("web.Validate refuses the file the agent wrote: %v\n%s", err, after)
		}
		written, _, err := webconfig.CarriedUsers(after)
		if err != nil {
			t.Fatalf("the file the agent wrote: %v\n%s", err, after)
		}
		for name, h := range written {
			if cost, _ := bcrypt.Cost([]byte(h)); cost > webconfig.MaxBcryptCost {
				t.Fatalf("portal user %q written with a hash of cost %d", name, cost)
			}
		}
		wc, err := webconfig.ParseWebConfig(after)
		if err != nil {
			t.Fatalf("the file the agent wrote: %v\n%s", err, after)
		}
		if wc.Users()["internal"] != string(internal) {
			t.Fatalf("the internal user is gone from the file the agent wrote:\n%s", after)
		}
	})
}
