package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

const repoRoot = "../.."

// loadCompose loads docker-compose.yml with compose-go, the loader `docker
// compose` uses, with an empty environment (so that the file's own
// defaults are what is checked) and paths resolved against the repository.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yml")},
		cli.WithWorkingDirectory(repoRoot), cli.WithEnv(nil), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

var (
	portalBinOnce sync.Once
	portalBin     string
	portalBinErr  error
)

// portalBinary is the portal built from this checkout, once per run.
func portalBinary(t *testing.T) string {
	t.Helper()
	portalBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portal-bin")
		if err != nil {
			portalBinErr = err
			return
		}
		portalBin = filepath.Join(dir, "portal")
		build := exec.Command("go", "build", "-o", portalBin, "./cmd/portal")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			portalBinErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if portalBinErr != nil {
		t.Fatalf("building the portal: %v", portalBinErr)
	}
	return portalBin
}

// portalSettings are the variables `portal cmd` reads, from its --help
// (the configuration code's own list).
func portalSettings(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	portalBin := portalBinary(t)
	var out bytes.Buffer
	c := exec.Command(portalBin, cmd, "--help")
	c.Stdout, c.Stderr = &out, &out
	_ = c.Run() // --help exits 0 or 2 by command; the text is what counts
	vars := map[string]bool{}
	line := regexp.MustCompile(`^  --[a-z-]+, ([A-Z_]+) \(default`)
	for sc := bufio.NewScanner(&out); sc.Scan(); {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			vars[m[1]] = true
		}
	}
	if len(vars) == 0 {
		t.Fatalf("portal %s --help lists no settings:\n%s", cmd, out.String())
	}
	return vars
}

// TestComposeRunsTheWholeStory: every service the walk-through needs is
// there, with a pinned image or a build, a health check for each that
// serves, and dependencies that start them in order.
func TestComposeRunsTheWholeStory(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	want := []string{"agent", "agent-init", "db", "dex", "mailpit", "migrate", "portal", "prometheus"}
	if got := slices.Sorted(func(yield func(string) bool) {
		for name := range p.Services {
			if !yield(name) {
				return
			}
		}
	}); !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for name, s := range p.Services {
		switch {
		case s.Build != nil:
			if !strings.HasSuffix(filepath.Clean(s.Build.Context), filepath.Base(mustAbs(t, repoRoot))) {
				t.Errorf("%s builds from %q, not the repository", name, s.Build.Context)
			}
		case s.Image == "":
			t.Errorf("%s has neither an image nor a build", name)
		case !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest"):
			t.Errorf("%s runs %q: pin a version, so the trial works tomorrow as today", name, s.Image)
		}
		// Every file a service mounts from the repository is there.
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which is missing: %v", name, v.Source, err)
				}
			}
		}
	}
	// Long-running services say when they are ready; one-shot ones do not.
	for _, name := range []string{"db", "dex", "mailpit", "portal", "agent", "prometheus"} {
		if hc := p.Services[name].HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 {
			t.Errorf("%s has no health check", name)
		}
	}
	deps := map[string]map[string]string{
		"migrate":    {"db": types.ServiceConditionHealthy},
		"portal":     {"db": types.ServiceConditionHealthy, "migrate": types.ServiceConditionCompletedSuccessfully, "dex": types.ServiceConditionHealthy, "mailpit": types.ServiceConditionHealthy},
		"mailpit":    {"dex": types.ServiceConditionHealthy},
		"agent":      {"agent-init": types.ServiceConditionCompletedSuccessfully, "portal": types.ServiceConditionStarted},
		"prometheus": {"agent": types.ServiceConditionHealthy},
	}
	for name, want := range deps {
		got := map[string]string{}
		for dep, d := range p.Services[name].DependsOn {
			got[dep] = d.Condition
		}
		for dep, cond := range want {
			if got[dep] != cond {
				t.Errorf("%s depends on %s with condition %q, want %q", name, dep, got[dep], cond)
			}
		}
	}

	// Prometheus reads the file the agent writes, through a volume they share.
	agent, prom := p.Services["agent"], p.Services["prometheus"]
	out := agent.Environment["PORTAL_AGENT_OUT"]
	if out == nil || !slices.Contains(prom.Command, "--web.config.file="+*out) {
		t.Errorf("Prometheus runs %v, the agent writes %v", prom.Command, out)
	} else if a, b := volumeAt(agent, filepath.Dir(*out)), volumeAt(prom, filepath.Dir(*out)); a == "" || a != b || a[0] == '/' {
		t.Errorf("the agent writes into %q, Prometheus reads %q: want one named volume", a, b)
	}

	// The portal's OIDC client is the one Dex knows.
	dex := readYAML(t, filepath.Join(repoRoot, "deploy/dex/config.yaml"))
	portal := p.Services["portal"].Environment
	var client map[string]any
	if clients, _ := dex["staticClients"].([]any); len(clients) == 1 {
		client, _ = clients[0].(map[string]any)
	}
	if client == nil || client["id"] != deref(portal["PORTAL_OIDC_CLIENT_ID"]) || client["secret"] != deref(portal["PORTAL_OIDC_CLIENT_SECRET"]) {
		t.Errorf("the portal's client ID or secret is not Dex's static client %v", client)
	}
	if uris, _ := client["redirectURIs"].([]any); len(uris) != 1 || uris[0] != deref(portal["PORTAL_BASE_URL"])+"/auth/callback" {
		t.Errorf("Dex's redirect URIs %v, want PORTAL_BASE_URL + /auth/callback", client["redirectURIs"])
	}
	if dex["issuer"] != deref(portal["PORTAL_OIDC_ISSUER"]) {
		t.Errorf("Dex's issuer %v, the portal's %v", dex["issuer"], deref(portal["PORTAL_OIDC_ISSUER"]))
	}
}

// TestComposeSetsOnlyVariablesThePortalReads: every portal variable the
// compose file sets is read by the command its service runs, so a
// misspelt or removed setting, which the portal would ignore, fails here.
func TestComposeSetsOnlyVariablesThePortalReads(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	checked := 0
	for name, s := range p.Services {
		if s.Build == nil {
			continue // not the portal's image
		}
		if len(s.Command) == 0 {
			t.Errorf("%s runs the portal's image without a command", name)
			continue
		}
		known := portalSettings(t, s.Command[0])
		for env := range s.Environment {
			if !strings.HasPrefix(env, "PORTAL_") && env != "DATABASE_URL" {
				continue
			}
			checked++
			if !known[env] {
				t.Errorf("%s sets %s, which `portal %s` does not read", name, env, s.Command[0])
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d portal variables found in docker-compose.yml", checked)
	}
}

// TestComposeCheckCatchesAMisspeltVariable proves the check above has teeth.
func TestComposeCheckCatchesAMisspeltVariable(t *testing.T) {
	t.Parallel()
	if known := portalSettings(t, "serve"); known["PORTAL_SMTP_URI"] || !known["PORTAL_SMTP_URL"] {
		t.Errorf("serve's settings from --help: %v", known)
	}
}

// volumeAt is the source of the volume s mounts at target.
func volumeAt(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v.Source
		}
	}
	return ""
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestMain removes the portal binary the compose tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if portalBin != "" {
		os.RemoveAll(filepath.Dir(portalBin))
	}
	os.Exit(code)
}
