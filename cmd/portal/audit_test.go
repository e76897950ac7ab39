package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	environ := map[string]string{"DATABASE_URL": dbURL}

	// An empty log checks out.
	status, stdout, stderr := runPortal(t, environ, "audit", "verify")
	if status != 0 || !strings.Contains(stdout, "events checked: 0") || !strings.Contains(stdout, "the log is empty") {
		t.Errorf("empty log: status %d\n%s%s", status, stdout, stderr)
	}

	var events []*portal.AuditEvent
	for i := range 4 {
		e := &portal.AuditEvent{Actor: "alice@example.org", Action: portal.ActionSignedIn, Details: map[string]any{"n": i}}
		if err := st.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	head := events[3]
	status, stdout, stderr = runPortal(t, environ, "audit", "verify")
	if status != 0 || !strings.Contains(stdout, "events checked: 4 from the first event") ||
		!strings.Contains(stdout, fmt.Sprintf("head: event %d, hash %s", head.ID, hex.EncodeToString(head.Hash))) {
		t.Errorf("intact log: status %d\n%s%s", status, stdout, stderr)
	}

	// Rewrite event 2 as a superuser could.
	_, err = pool.Exec(ctx, `
		ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete;
		UPDATE audit_events SET actor = 'mallory@example.org' WHERE id = `+fmt.Sprint(events[1].ID)+`;
		ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete;`)
	if err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr = runPortal(t, environ, "audit", "verify")
	wantBreak := fmt.Sprintf("BROKEN at event %d (%s)", events[1].ID, events[1].At.UTC().Format(portal.AuditTimeFormat))
	if status != 1 || !strings.Contains(stdout, wantBreak) || !strings.Contains(stdout, "hash mismatch") ||
		!strings.Contains(stdout, fmt.Sprintf("last good event: %d", events[0].ID)) ||
		!strings.Contains(stderr, fmt.Sprintf("broken at event %d", events[1].ID)) {
		t.Errorf("rewritten event: status %d, want 1 and %q\nstdout:\n%sstderr:\n%s", status, wantBreak, stdout, stderr)
	}

	// From a known good event after the break, the rest checks out.
	status, stdout, stderr = runPortal(t, environ, "audit", "verify", "--since", fmt.Sprint(events[1].ID))
	if status != 0 || !strings.Contains(stdout, fmt.Sprintf("events checked: 2 after event %d", events[1].ID)) {
		t.Errorf("--since: status %d\n%s%s", status, stdout, stderr)
	}

	// Each run is recorded for the audit page: the last one is the --since run.
	last, err := st.LastAuditVerification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var runs, broken int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT ok) FROM audit_verifications`).Scan(&runs, &broken); err != nil {
		t.Fatal(err)
	}
	if runs != 4 || broken != 1 || !last.OK() || last.SinceID != events[1].ID || last.HeadID != head.ID || last.VerifiedBy != auditVerifiedBy {
		t.Errorf("%d runs recorded, %d broken; last %+v", runs, broken, last)
	}
}

// TestAuditVerifyReportsABackDatedEvent: an event that links and hashes
// correctly but is dated before its predecessor, as someone able to insert
// rows and compute hashes would forge it, makes `portal audit verify` exit 1
// naming it.
func TestAuditVerifyReportsABackDatedEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	var events []*portal.AuditEvent
	for i := range 2 {
		e := &portal.AuditEvent{Actor: "alice@example.org", Action: portal.ActionSignedIn, Details: map[string]any{"n": i}}
		if err := st.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	forged := &portal.AuditEvent{Actor: "sam@2i2c.org", Action: portal.ActionRequestApproved,
		At: events[1].At.Add(-24 * time.Hour), Details: map[string]any{"note": "approved yesterday"}}
	hash, err := forged.ChainHash(events[1].Hash)
	if err != nil {
		t.Fatal(err)
	}
	err = pool.QueryRow(ctx, `INSERT INTO audit_events (at, actor, action, details, prev_hash, hash)
		VALUES ($1, $2, $3, '{"note": "approved yesterday"}', $4, $5) RETURNING id`,
		forged.At, forged.Actor, forged.Action, events[1].Hash, hash).Scan(&forged.ID)
	if err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr := runPortal(t, map[string]string{"DATABASE_URL": dbURL}, "audit", "verify")
	want := fmt.Sprintf("BROKEN at event %d (%s): older than its predecessor", forged.ID, forged.At.UTC().Format(portal.AuditTimeFormat))
	if status != 1 || !strings.Contains(stdout, want) || !strings.Contains(stdout, fmt.Sprintf("before event %d", events[1].ID)) ||
		!strings.Contains(stdout, fmt.Sprintf("last good event: %d", events[1].ID)) {
		t.Errorf("back-dated event: status %d, want 1 and %q\nstdout:\n%sstderr:\n%s", status, want, stdout, stderr)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ map[string]string
		args    []string
		status  int
		want    string
	}{
		{"no action", nil, []string{"audit"}, 2, "audit wants `verify`"},
		{"unknown action", nil, []string{"audit", "repair"}, 2, "audit wants `verify`"},
		{"no database", nil, []string{"audit", "verify"}, 2, "DATABASE_URL"},
		{"since not a number", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x"}, []string{"audit", "verify", "--since", "yesterday"},
			2, `--since="yesterday": want a whole number`},
		{"stray argument", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x"}, []string{"audit", "verify", "now"},
			2, "takes no arguments"},
		{"help", nil, []string{"audit", "--help"}, 0, ""},
		{"help of verify", nil, []string{"audit", "verify", "--help"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, stdout, stderr := runPortal(t, tt.environ, tt.args...)
			if status != tt.status || !strings.Contains(stderr, tt.want) {
				t.Errorf("status %d, stderr %q; want %d and %q", status, stderr, tt.status, tt.want)
			}
			if tt.status == 0 && !strings.Contains(stdout, "--since") {
				t.Errorf("help does not list --since:\n%s", stdout)
			}
		})
	}
}

func TestAuditVerifyMissingStart(t *testing.T) {
	t.Parallel()
	status, _, stderr := runPortal(t, map[string]string{"DATABASE_URL": pgtest.URL(t)}, "audit", "verify", "--since", "42")
	if status != 1 || !strings.Contains(stderr, "audit event 42") || !strings.Contains(stderr, "not found") {
		t.Errorf("--since a missing event: status %d, stderr %q", status, stderr)
	}
}
