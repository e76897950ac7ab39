package workflow

import (
	"bytes"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// dnsLabel is RFC 1123's label, written out here rather than taken from
// portal, so that the fuzz target checks the rule and not only the code.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// clusterFileKeys are the keys a clusters file may hold, by where they
// appear.
var clusterFileKeys = map[string][]string{
	"":                    {"clusters"},
	"clusters":            {"name", "display_name", "prometheus_url", "credential_ttl_days", "note", "enabled", "policy"},
	"policy":              {"auto_approve", "approvals_required", "max_ttl_days", "request_ttl_days"},
	"policy.auto_approve": {"email_domains", "groups"},
}

// FuzzParseClusters reads any document as PORTAL_CLUSTERS_FILE. It must
// never panic; whatever it accepts must hold only the keys the file format
// names, in one YAML document, and clusters valid by the cluster rules (a unique DNS-label name,
// an https Prometheus URL with a host, a lifetime in range), unchanged by
// normalising again. The seeds (testdata/fuzz/FuzzParseClusters) are the
// file deploy/portal/clusters.yaml ships and its likely mistakes.
func FuzzParseClusters(f *testing.F) {
	f.Add([]byte(clustersFile))
	f.Fuzz(func(t *testing.T, doc []byte) {
		clusters, err := ParseClusters(bytes.NewReader(doc))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "clusters file: ") {
				t.Fatalf("refusal %q does not say it is about the clusters file", err)
			}
			return
		}
		checkKnownKeys(t, doc)
		if n := documents(doc); n > 1 {
			t.Fatalf("accepted a file of %d YAML documents, of which it reads the first only", n)
		}
		seen := map[string]bool{}
		for _, c := range clusters {
			if !dnsLabel.MatchString(c.Name) || seen[c.Name] {
				t.Fatalf("accepted the cluster name %q (a DNS label, once)", c.Name)
			}
			seen[c.Name] = true
			u, err := url.Parse(c.PrometheusURL)
			if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
				t.Fatalf("accepted the Prometheus URL %q of %s", c.PrometheusURL, c.Name)
			}
			if c.CredentialTTLDays < 1 || c.CredentialTTLDays > portal.MaxClusterTTLDays {
				t.Fatalf("accepted a credential lifetime of %d days for %s", c.CredentialTTLDays, c.Name)
			}
			again := *c
			again.Normalize()
			if err := again.Validate(); err != nil || again.Name != c.Name || again.PrometheusURL != c.PrometheusURL ||
				again.DisplayName != c.DisplayName || again.Note != c.Note {
				t.Fatalf("cluster %s changes when normalised again, or is invalid (%v)", c.Name, err)
			}
		}
	})
}

// documents counts the YAML documents in doc, as far as they parse.
func documents(doc []byte) int {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	n := 0
	for {
		var v yaml.Node
		if dec.Decode(&v) != nil {
			return n
		}
		n++
	}
}

// checkKnownKeys fails t if the document, read as plain YAML, holds a key
// the clusters file format does not name: ParseClusters must refuse those.
func checkKnownKeys(t *testing.T, doc []byte) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil || v == nil {
		return // nothing ParseClusters could have read keys from
	}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if !slices.Contains(clusterFileKeys[where], k) {
					t.Fatalf("accepted a file with the key %q under %q", k, where)
				}
				next := k
				if where == "clusters" || where == "policy" {
					next = strings.TrimPrefix(where+"."+k, "clusters.")
				}
				walk(next, child)
			}
		case []any:
			for _, e := range v {
				walk(where, e)
			}
		}
	}
	walk("", v)
}
