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
`

func TestParseClusters(t *testing.T) {
	t.Parallel()
	cs, err := ParseClusters(strings.NewReader(clustersFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].PrometheusURL != "https://prometheus.pilot.2i2c.cloud" || cs[0].CredentialTTLDays != 90 ||
		!cs[0].Enabled || cs[1].Enabled || cs[1].CredentialTTLDays != 30 {
		t.Errorf("parsed %+v %+v", cs[0], cs[1])
	}
	tests := []struct{ name, file, want string }{
		{"unknown key", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n    ttl: 3\n", "field ttl not found"},
		{"bad name", "clusters:\n  - name: Bad_Name\n    prometheus_url: https://p.x\n", "DNS label"},
		{"plain http", "clusters:\n  - name: x\n    prometheus_url: http://p.x\n", "https"},
		{"twice", "clusters:\n  - name: x\n    prometheus_url: https://p.x\n  - name: x\n    prometheus_url: https://p.y\n", "listed twice"},
		{"not YAML", "clusters: [", "clusters file"},
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
	if n, err := svc.ImportClustersFile(ctx, path); err != nil || n != 2 {
		t.Fatalf("first import: %d changed, %v", n, err)
	}
	if n, err := svc.ImportClustersFile(ctx, path); err != nil || n != 0 {
		t.Errorf("second import of the same file: %d changed, %v; want none", n, err)
	}
	if n := auditCount(); n != 2 {
		t.Errorf("%d cluster audit events after two imports, want 2", n)
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
	if n := auditCount(); n != 3 {
		t.Errorf("%d cluster audit events, want 3 (two created, one updated)", n)
	}
}
