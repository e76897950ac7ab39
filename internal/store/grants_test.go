package store

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TestAppRoleCannotRewriteTheAuditLog follows the README's operator note:
// a role with the grants it lists runs the portal, appends to the audit log,
// and can neither rewrite it nor switch its trigger off.
func TestAppRoleCannotRewriteTheAuditLog(t *testing.T) {
	t.Parallel()
	// Roles are made by DATABASE_URL's role (pgtest needs one that may
	// create roles), in the test's own database.
	adminCfg := poolConfig(t, os.Getenv("DATABASE_URL"))
	adminCfg.ConnConfig.Database = poolConfig(t, pgtest.URL(t)).ConnConfig.Database
	owner := openPool(t, adminCfg)
	ctx := context.Background() // not the test's: the cleanup below needs it

	role := fmt.Sprintf("portal_app_%d", time.Now().UnixNano())
	for _, stmt := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD 'app-password'`,
		`GRANT USAGE ON SCHEMA public TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + role,
		`REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM ` + role,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ` + role,
	} {
		if _, err := owner.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		owner.Exec(ctx, `DROP OWNED BY `+role)
		owner.Exec(ctx, `DROP ROLE `+role)
	})

	appCfg := adminCfg.Copy()
	appCfg.ConnConfig.User, appCfg.ConnConfig.Password = role, "app-password"
	app := openPool(t, appCfg)
	s := New(app)

	if err := s.CreateCluster(ctx, demoCluster("granted")); err != nil {
		t.Fatalf("the app role cannot do its work: %v", err)
	}
	if err := s.AppendAudit(ctx, systemEvent(portal.ActionClusterCreated)); err != nil {
		t.Fatalf("the app role cannot append to the audit log: %v", err)
	}
	for _, stmt := range []string{
		`UPDATE audit_events SET action = 'forged'`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
		`ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete`,
	} {
		_, err := app.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "must be owner") && !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the app role: %v; want a privilege error", stmt, err)
		}
	}
}
