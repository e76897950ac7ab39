package main

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeRow is one row of a configuration table in the README.
type readmeRow struct{ flag, def string }

// readmeTables reads the README's configuration tables, each under the line
// naming its command (e.g. "`portal serve`:"), by variable.
func readmeTables(t *testing.T) map[string]map[string]readmeRow {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("README has no Configuration section")
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	row := regexp.MustCompile("^\\| `([A-Z_]+)` \\| `(--[a-z-]+)` \\| ([^|]+) \\|")
	command := regexp.MustCompile("^`portal ([a-z]+)`")
	tables := map[string]map[string]readmeRow{}
	current := ""
	for line := range strings.Lines(section) {
		if m := command.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if current == "" {
			t.Fatalf("README: a configuration row before any command: %s", line)
		}
		if tables[current] == nil {
			tables[current] = map[string]readmeRow{}
		}
		if _, dup := tables[current][m[1]]; dup {
			t.Errorf("README: %s is listed twice for portal %s", m[1], current)
		}
		tables[current][m[1]] = readmeRow{flag: m[2], def: strings.TrimSpace(m[3])}
	}
	return tables
}

// documented is how the README writes a setting's default.
func documented(s setting) string {
	switch {
	case errors.Is(s.parse(""), errMissing):
		return "required"
	case s.def == "":
		return "none"
	default:
		return "`" + s.def + "`"
	}
}

// TestREADMEConfigurationTablesMatchTheCode: the README's tables list the
// same variables as the configuration code, with the same flags and
// defaults, for `portal serve` and `portal agent`.
func TestREADMEConfigurationTablesMatchTheCode(t *testing.T) {
	t.Parallel()
	tables := readmeTables(t)
	var serve serveConfig
	var agent agentConfig
	for cmd, settings := range map[string][]setting{"serve": serve.settings(), "agent": agent.settings()} {
		table := tables[cmd]
		if table == nil {
			t.Errorf("README has no configuration table for portal %s", cmd)
			continue
		}
		code := map[string]bool{}
		for _, s := range settings {
			if s.env == "" {
				continue
			}
			code[s.env] = true
			r, ok := table[s.env]
			if !ok {
				t.Errorf("portal %s reads %s, which the README's table leaves out", cmd, s.env)
				continue
			}
			if r.flag != "--"+s.flag {
				t.Errorf("README: portal %s %s has flag %s, the code --%s", cmd, s.env, r.flag, s.flag)
			}
			if want := documented(s); r.def != want {
				t.Errorf("README: portal %s %s defaults to %s, the code to %s", cmd, s.env, r.def, want)
			}
		}
		for env := range table {
			if !code[env] {
				t.Errorf("README lists %s for portal %s, which the code does not read", env, cmd)
			}
		}
	}
}

// chartOwned are the serve settings the chart sets itself: the listen
// addresses follow its ports, the clusters file its `clusters` value.
var chartOwned = []string{"PORTAL_LISTEN", "PORTAL_METRICS_LISTEN", "PORTAL_CLUSTERS_FILE"}

// chartSecrets are the serve settings the chart takes from Secrets.
var chartSecrets = []string{"DATABASE_URL", "PORTAL_OIDC_CLIENT_SECRET", "PORTAL_SMTP_URL", "PORTAL_STAFF_WEBHOOK_URL"}

// TestChartReachesEverySetting: every setting of `portal serve` is reachable
// from the Helm chart's values, as a `config` key, a secret or a setting the
// chart owns; and the chart offers no setting the portal does not read, which
// the pods would ignore.
func TestChartReachesEverySetting(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../deploy/helm/credential-portal/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Config struct {
				AdditionalProperties *bool                      `json:"additionalProperties"`
				Properties           map[string]json.RawMessage `json:"properties"`
			} `json:"config"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	cfg := schema.Properties.Config
	if cfg.AdditionalProperties == nil || *cfg.AdditionalProperties {
		t.Error("the chart's schema lets unknown config keys through: a misspelt setting would be ignored")
	}
	reachable := map[string]string{}
	for k := range cfg.Properties {
		reachable[k] = "config." + k
	}
	for _, k := range chartOwned {
		reachable[k] = "set by the chart"
	}
	for _, k := range chartSecrets {
		reachable[k] = "secrets"
	}
	var serve serveConfig
	read := map[string]bool{}
	for _, s := range serve.settings() {
		read[s.env] = true
		if _, ok := reachable[s.env]; !ok {
			t.Errorf("portal serve reads %s, which the chart's values cannot set: add it to config (values.yaml and values.schema.json)", s.env)
		}
		if s.secret && reachable[s.env] != "secrets" {
			t.Errorf("%s is secret, but the chart puts it in %s, in the pod spec", s.env, reachable[s.env])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(reachable)) {
		if !read[k] {
			t.Errorf("the chart sets %s (%s), which portal serve does not read", k, reachable[k])
		}
	}
}
