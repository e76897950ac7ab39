package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

// TestPortalRoleOfTheGrantsRunsTheWholeFlowAndCannotRewriteTheAudit applies
// deploy/postgres/grants.sql, as docs/operations.md says, to a role that owns
// nothing, runs the whole story through the real server as that role
// (sign-in, request, approval, download, an agent's sync, revocation,
// readiness, metrics), then tries, as that role, what an intruder holding
// DATABASE_URL would do to cover their tracks: change, delete or truncate
// audit events, or drop the triggers that refuse it. Each is refused.
func TestPortalRoleOfTheGrantsRunsTheWholeFlowAndCannotRewriteTheAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ownerURL := pgtest.URL(t)
	owner, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close(ctx) })
	var ownerRole string
	if err := owner.QueryRow(ctx, `SELECT current_user`).Scan(&ownerRole); err != nil {
		t.Fatal(err)
	}

	// The portal's role, made by the server's administrator (DATABASE_URL
	// of the test run), as roles.sql does.
	suffix := make([]byte, 6)
	rand.Read(suffix)
	role, password := "portal_app_"+hex.EncodeToString(suffix), hex.EncodeToString(suffix)+"-pw"
	admin, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Fatalf("connect as the administrator (DATABASE_URL): %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, role, password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Before the database goes: its privileges would keep the role.
		owner.Exec(ctx, `DROP OWNED BY `+role)
		if a, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL")); err == nil {
			a.Exec(ctx, `DROP ROLE IF EXISTS `+role)
			a.Close(ctx)
		}
	})

	grants, err := os.ReadFile("../../deploy/postgres/grants.sql")
	if err != nil {
		t.Fatal(err)
	}
	sql := regexp.MustCompile(`\bportal_owner\b`).ReplaceAllString(string(grants), ownerRole)
	sql = regexp.MustCompile(`\b(TO|FROM) portal;`).ReplaceAllString(sql, "$1 "+role+";")
	if _, err := owner.Exec(ctx, sql); err != nil {
		t.Fatalf("grants.sql as the schema owner: %v", err)
	}

	cfg, err := pgxpool.ParseConfig(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, password
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var who string
	if err := pool.QueryRow(ctx, `SELECT current_user`).Scan(&who); err != nil || who != role {
		t.Fatalf("connected as %q (%v), want %s", who, err, role)
	}

	p := newPortal(t, portalOptions{store: store.New(pool)})
	p.addCluster("awi-ciroh")
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	cred := p.issue(alice, sam, "awi-ciroh")
	token := sam.syncToken("awi-ciroh")
	req, _ := http.NewRequest(http.MethodGet, p.URL+webconfig.PublicationPath("awi-ciroh"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the agent's sync as the portal role: %d", resp.StatusCode)
	}
	if r := alice.apiPost(fmt.Sprintf("/api/v1/credentials/%d/revoke", cred.ID), `{"reason":"done with it"}`); r.StatusCode != http.StatusOK {
		t.Errorf("revoke as the portal role: %d %s", r.StatusCode, r.Body)
	}
	for _, path := range []string{"/readyz", "/metrics"} {
		if r := p.browser().get(path); r.StatusCode != http.StatusOK {
			t.Errorf("%s as the portal role: %d %s", path, r.StatusCode, r.Body)
		}
	}
	if n := p.count(`SELECT count(*) FROM audit_events`); n < 4 {
		t.Errorf("%d audit events after the flow", n)
	}

	for _, stmt := range []string{
		`UPDATE audit_events SET details = '{}'`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
		`ALTER TABLE audit_events DISABLE TRIGGER ALL`,
		`DROP TRIGGER audit_events_no_update_delete ON audit_events`,
		`DROP TABLE audit_events`,
		`DELETE FROM goose_db_version`,
		`CREATE TABLE intruder (x int)`,
	} {
		_, err := pool.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		// Refused by the role's privileges, not only by the triggers (which
		// answer 42501 too, saying "append-only"): the owner of the table
		// could drop those.
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || strings.Contains(pgErr.Message, "append-only") {
			t.Errorf("%s as the portal role: %v; want SQLSTATE 42501 from the role's privileges", stmt, err)
		}
	}
}
