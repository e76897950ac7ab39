package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runPortal runs the portal in-process with only the given environment.
func runPortal(t *testing.T, environ map[string]string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return environ[k] }
	status = run(context.Background(), args, env{getenv: getenv, stdout: &out, stderr: &errOut})
	return status, out.String(), errOut.String()
}

// complete is a serve configuration with every required setting, plus extra.
func complete(extra map[string]string) map[string]string {
	env := map[string]string{
		"DATABASE_URL":          "postgres://portal@127.0.0.1:1/portal",
		"PORTAL_BASE_URL":       "https://credentials.example",
		"PORTAL_OIDC_ISSUER":    "https://accounts.example",
		"PORTAL_OIDC_CLIENT_ID": "portal",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ map[string]string
		args    []string
		names   string // the setting the one-line message must name
		want    string // and what it must say is expected
	}{
		{"listen not an address, nothing else set", map[string]string{"PORTAL_LISTEN": "nonsense"}, []string{"serve"},
			`PORTAL_LISTEN="nonsense"`, "host:port"},
		{"listen not an address", complete(map[string]string{"PORTAL_LISTEN": "nonsense"}), []string{"serve"},
			`PORTAL_LISTEN="nonsense"`, "host:port"},
		{"issuer missing", complete(map[string]string{"PORTAL_OIDC_ISSUER": ""}), []string{"serve"},
			"PORTAL_OIDC_ISSUER", "required"},
		{"issuer not a URL", complete(map[string]string{"PORTAL_OIDC_ISSUER": "accounts.google.com"}), []string{"serve"},
			`PORTAL_OIDC_ISSUER="accounts.google.com"`, "absolute URL"},
		{"base url with a path", complete(map[string]string{"PORTAL_BASE_URL": "https://example.org/portal"}), []string{"serve"},
			`PORTAL_BASE_URL="https://example.org/portal"`, "scheme and host only"},
		{"base url missing", complete(map[string]string{"PORTAL_BASE_URL": ""}), []string{"serve"},
			"PORTAL_BASE_URL", "required"},
		{"session lifetime", complete(map[string]string{"PORTAL_SESSION_LIFETIME": "-1h"}), []string{"serve"},
			`PORTAL_SESSION_LIFETIME="-1h"`, "positive duration"},
		{"listen port out of range", complete(map[string]string{"PORTAL_LISTEN": ":99999"}), []string{"serve"},
			`PORTAL_LISTEN=":99999"`, "port number"},
		{"database url missing", complete(map[string]string{"DATABASE_URL": ""}), []string{"serve"},
			"DATABASE_URL", "required"},
		{"database url malformed, value hidden", complete(map[string]string{"DATABASE_URL": "mysql-secret-password"}), []string{"serve"},
			"DATABASE_URL=(hidden)", "PostgreSQL connection URL"},
		{"database url unparsable by pgx", complete(map[string]string{"DATABASE_URL": "postgres://u:pw@host:notaport/db"}), []string{"serve"},
			"DATABASE_URL=(hidden)", "not a valid PostgreSQL connection string"},
		{"base url relative", complete(map[string]string{"PORTAL_BASE_URL": "portal.example"}), []string{"serve"},
			`PORTAL_BASE_URL="portal.example"`, "absolute http or https URL"},
		{"shutdown timeout", complete(map[string]string{"PORTAL_SHUTDOWN_TIMEOUT": "soon"}), []string{"serve"},
			`PORTAL_SHUTDOWN_TIMEOUT="soon"`, "duration"},
		{"log level", complete(map[string]string{"PORTAL_LOG_LEVEL": "loud"}), []string{"serve"},
			`PORTAL_LOG_LEVEL="loud"`, "debug, info, warn, error"},
		{"flag overrides a good env value", complete(map[string]string{"PORTAL_LISTEN": ":8080"}), []string{"serve", "--listen", "bad"},
			`--listen="bad"`, "host:port"},
		{"dev refuses a public address", map[string]string{}, []string{"dev", "--listen", "0.0.0.0:8080"},
			`--listen="0.0.0.0:8080"`, "loopback only"},
		{"migrate without database", map[string]string{}, []string{"migrate", "up"},
			"DATABASE_URL", "required"},
		{"bcrypt cost above what agents accept", complete(map[string]string{"PORTAL_BCRYPT_COST": "13"}), []string{"serve"},
			`PORTAL_BCRYPT_COST="13"`, "from 4 to 12: `portal agent` refuses hashes above cost 12"},
		{"bcrypt cost below bcrypt's least", complete(map[string]string{"PORTAL_BCRYPT_COST": "3"}), []string{"serve"},
			`PORTAL_BCRYPT_COST="3"`, "from 4 to 12"},
		{"agent max bytes not a size", map[string]string{"PORTAL_AGENT_MAX_BYTES": "lots"}, []string{"agent"},
			`PORTAL_AGENT_MAX_BYTES="lots"`, "such as 1MiB"},
		{"agent max bytes too large", map[string]string{"PORTAL_AGENT_MAX_BYTES": "65537KiB"}, []string{"agent"},
			`PORTAL_AGENT_MAX_BYTES="65537KiB"`, "from 4KiB to 64MiB"},
		{"agent max users zero", map[string]string{"PORTAL_AGENT_MAX_USERS": "0"}, []string{"agent"},
			`PORTAL_AGENT_MAX_USERS="0"`, "from 1 to 1000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, _, stderr := runPortal(t, tt.environ, tt.args...)
			if status != 2 {
				t.Errorf("exit status %d, want 2; stderr: %s", status, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 {
				t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), stderr)
			}
			if !strings.Contains(lines[0], tt.names) || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr %q should name %q and say %q", lines[0], tt.names, tt.want)
			}
			if strings.Contains(stderr, "secret-password") || strings.Contains(stderr, ":pw@") {
				t.Errorf("stderr leaks the database URL: %s", stderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"serve", "--nope"}, "flag provided but not defined: -nope"},
		{"migrate without action", []string{"migrate", "--database-url", "postgres://x@127.0.0.1:1/x"}, "`up` or `status`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, _, stderr := runPortal(t, nil, tt.args...)
			if status != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("status %d, stderr %q; want 2 and %q", status, stderr, tt.want)
			}
		})
	}
}

func TestHelpListsSettings(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "migrate", "dev", "version"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			status, stdout, _ := runPortal(t, nil, cmd, "--help")
			if status != 0 || !strings.Contains(stdout, "Usage: portal "+cmd) {
				t.Fatalf("status %d, stdout %q", status, stdout)
			}
			if cmd == "serve" && !strings.Contains(stdout, "PORTAL_LISTEN") {
				t.Errorf("serve --help does not list PORTAL_LISTEN:\n%s", stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	status, stdout, _ := runPortal(t, nil, "version")
	if status != 0 || stdout != "portal "+version+"\n" {
		t.Errorf("status %d, stdout %q", status, stdout)
	}
}

func TestBrokenClustersFileStopsServe(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "clusters.yaml")
	if err := os.WriteFile(path, []byte("clusters:\n  - name: Bad_Name\n    prometheus_url: https://p.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	status, _, stderr := runPortal(t, complete(map[string]string{"PORTAL_CLUSTERS_FILE": path}), "serve")
	if status != 2 || !strings.Contains(stderr, "PORTAL_CLUSTERS_FILE") || !strings.Contains(stderr, "DNS label") {
		t.Errorf("serve with a broken clusters file: exit %d, %q; want 2 naming the variable and the fault", status, stderr)
	}
	status, _, stderr = runPortal(t, complete(map[string]string{"PORTAL_CLUSTERS_FILE": path + ".missing"}), "serve")
	if status != 2 || !strings.Contains(stderr, "PORTAL_CLUSTERS_FILE") {
		t.Errorf("serve with a missing clusters file: exit %d, %q", status, stderr)
	}
}

// TestAgentDefaultsAvoidExporterPorts: `portal agent` listens by default on
// 10095, outside Prometheus's allocated exporter ports, not on
// node_exporter's 9100, which distributions install beside Prometheus.
func TestAgentDefaultsAvoidExporterPorts(t *testing.T) {
	t.Parallel()
	status, stdout, _ := runPortal(t, nil, "agent", "--help")
	if status != 0 {
		t.Fatalf("status %d, stdout %q", status, stdout)
	}
	for _, want := range []string{"--listen, PORTAL_AGENT_LISTEN (default :10095)", "--interval, PORTAL_AGENT_INTERVAL (default 1s)",
		"--max-users, PORTAL_AGENT_MAX_USERS (default 5000)", "--max-bytes, PORTAL_AGENT_MAX_BYTES (default 1MiB)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("agent --help does not say %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "9100") {
		t.Errorf("agent --help mentions 9100:\n%s", stdout)
	}
}

// TestByteSizes reads the sizes PORTAL_AGENT_MAX_BYTES takes.
func TestByteSizes(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]int{"1MiB": 1 << 20, "512KiB": 512 << 10, "1048576": 1 << 20, " 2 MiB ": 2 << 20, "64MiB": 64 << 20, "4KiB": 4 << 10} {
		var got int
		if err := byteSizeVar(&got, 4<<10, 64<<20)(v); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"", "1GiB", "1MB", "-1MiB", "0", "4095", "65MiB", "1.5MiB"} {
		var got int
		if err := byteSizeVar(&got, 4<<10, 64<<20)(v); err == nil {
			t.Errorf("%q: accepted as %d", v, got)
		}
	}
}
