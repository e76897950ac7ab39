package workflow

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/store"
)

const clustersFile = `clusters:
  - name: 2i2c
    display_name: 2i2c shared cluster
    prometheus_url: https://prometheus.pilot.2i2c.cloud/
    note: One credential covers every hub on this shared cluster.
  - name: awi-ciroh
    prometheus_url: https://prometheus.ciroh.awi.2i2c.cloud
    credential_ttl_days: 30
    enabled: false
  - name: earthscope
    prometheus_url: https://prometheus.earthscope.2i2c.cloud
    credential_ttl_days: 90
    policy:
      auto_approve:
        email_domains: [earthscope.org]
        groups: [earthscope-admins]
      approvals_required: 2
      max_ttl_days: 180
      request_ttl_days: 14
`

func TestParseClusters(t *testing.T) {
	t.Parallel()
	cs, err := ParseClusters(strings.NewReader(clustersFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].PrometheusURL != "https://prometheus.pilot.2i2c.cloud" || cs[0].CredentialTTLDays != 90 ||
		!cs[0].Enabled || cs[1].Enabled || cs[1].CredentialTTLDays != 30 {
		t.Fatalf("parsed %+v %+v", cs[0], cs[1])
	}
	if p := cs[0].Policy; p.AutoApproval() || p.Required() != 1 || p.MaxTTLDays != 0 || p.RequestTTLDays != 0 {
		t.Errorf("a cluster with no policy has %+v, want the default", p)
	}
	if p := cs[2].Policy; strings.Join(p.AutoApproveEmailDomains, ",") != "earthscope.org" ||
		strings.Join(p.AutoApproveGroups, ",") != "earthscope-admins" || p.ApprovalsRequired != 2 || p.MaxTTLDays != 180 ||
		p.RequestTTLDays != 14 {
		t.Errorf("earthscope's policy parsed as %+v", p)
	}
	tests := []struct{ name, file, want string }{
		{"unknown key", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n    ttl: 3\n", "field ttl not found"},
		{"bad name", "clusters:\n  - name: Bad_Name\n    prometheus_url: https://p.x\n", "DNS label"},
		{"plain http", "clusters:\n  - name: x\n    prometheus_url: http://p.x\n", "https"},
		{"twice", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n  - name: x\n    prometheus_url: https://p.y\n", "listed twice"},
		{"not YAML", "clusters: [", "clusters file"},
		{"unknown policy key", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n    policy:\n      auto_aprove: {}\n", "field auto_aprove not found"},
		{"unknown auto_approve key", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n    policy:\n      auto_approve:\n        domains: [x.org]\n", "field domains not found"},
		{"free mail domain", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n    policy:\n      auto_approve:\n        email_domains: [gmail.com]\n", "free mail provider"},
		{"three approvals", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n    policy:\n      approvals_required: 3\n", "1 or 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseClusters(strings.NewReader(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseClusters: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestImportClustersFileIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	svc := New(st, Options{})
	path := filepath.Join(t.TempDir(), "clusters.yaml")
	if err := os.WriteFile(path, []byte(clustersFile), 0o600); err != nil {
		t.Fatal(err)
	}
	auditCount := func() int {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action LIKE 'cluster.%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n, err := svc.ImportClustersFile(ctx, path); err != nil || n != 3 {
		t.Fatalf("first import: %d changed, %v", n, err)
	}
	if n, err := svc.ImportClustersFile(ctx, path); err != nil || n != 0 {
		t.Errorf("second import of the same file: %d changed, %v; want none", n, err)
	}
	if n := auditCount(); n != 3 {
		t.Errorf("%d cluster audit events after two imports, want 3", n)
	}
	edited := strings.Replace(clustersFile, "credential_ttl_days: 30", "credential_ttl_days: 60", 1)
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.ImportClustersFile(ctx, path); err != nil || n != 1 {
		t.Errorf("import after an edit: %d changed, %v; want 1", n, err)
	}
	c, err := st.ClusterByName(ctx, "awi-ciroh")
	if err != nil || c.CredentialTTLDays != 60 {
		t.Errorf("awi-ciroh after the edit: %+v, %v", c, err)
	}
	if n := auditCount(); n != 4 {
		t.Errorf("%d cluster audit events, want 4 (three created, one updated)", n)
	}

	// A policy change in the file is an update, audited with before and
	// after.
	edited = strings.Replace(edited, "approvals_required: 2", "approvals_required: 1", 1)
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.ImportClustersFile(ctx, path); err != nil || n != 1 {
		t.Errorf("import after a policy edit: %d changed, %v; want 1", n, err)
	}
	var change string
	if err := st.Pool().QueryRow(ctx, `SELECT details->>'policy.approvals_required' FROM audit_events
		WHERE action = 'cluster.updated' ORDER BY id DESC LIMIT 1`).Scan(&change); err != nil || change != "[2, 1]" {
		t.Errorf("the policy change is audited as %q (%v), want [2, 1]", change, err)
	}
}
