package workflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// FuzzAuditFilter gives the audit review any filter, cursor and limit, as
// the audit page and GET /api/v1/audit pass them on, on a real PostgreSQL
// database made once per fuzzing process and holding a request, its
// approval and a cluster's creation. A filter is either refused as invalid
// input, with a message, or runs against PostgreSQL without error, for a
// page as for the streamed export, and gives events that match it. The
// seeds (testdata/fuzz/FuzzAuditFilter) are the filters the page offers and
// the mistakes they invite.
func FuzzAuditFilter(f *testing.F) {
	ctx := context.Background()
	st := store.New(pgtest.New(f))
	svc := workflow.New(st, workflow.Options{})
	staff := &portal.User{Issuer: "https://idp.example.org", Subject: "sam", Email: "sam@2i2c.org", EmailVerified: true, Role: portal.RoleStaff}
	alice := &portal.User{Issuer: "https://idp.example.org", Subject: "alice", Email: "alice@example.org", EmailVerified: true, Role: portal.RoleCustomer}
	for _, u := range []*portal.User{staff, alice} {
		if err := st.UpsertUser(ctx, u); err != nil {
			f.Fatal(err)
		}
	}
	asStaff := workflow.Actor{User: staff, IP: "192.0.2.1", UserAgent: "fuzz"}
	cluster := &portal.Cluster{Name: "awi-ciroh", PrometheusURL: "https://prometheus.awi-ciroh.2i2c.cloud", CredentialTTLDays: 90, Enabled: true}
	if err := svc.CreateCluster(ctx, asStaff, cluster); err != nil {
		f.Fatal(err)
	}
	key, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	r, err := svc.CreateRequest(ctx, workflow.Actor{User: alice, IP: "192.0.2.2", UserAgent: "fuzz"},
		workflow.RequestInput{Cluster: cluster.Name, PublicKey: key.Recipient().String(), Justification: "Dashboards for the research team."})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := svc.Approve(ctx, asStaff, r.ID, workflow.ApproveInput{Note: "welcome"}); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, actor, action, clusterName, subjectType, subjectID, from, to, text, cursor string, limit int) {
		q := workflow.AuditQuery{Actor: actor, Action: action, Cluster: clusterName, SubjectType: subjectType,
			SubjectID: subjectID, From: from, To: to, Text: text}
		page, err := svc.AuditEvents(ctx, asStaff, q, cursor, limit)
		if err != nil {
			checkInvalid(t, "AuditEvents", err)
		} else {
			if len(page.Events) > limit {
				t.Fatalf("%d events on a page of at most %d", len(page.Events), limit)
			}
			for _, e := range page.Events {
				checkMatches(t, q, e)
			}
		}
		// The export reads the same filter, without cursor and limit.
		err = svc.EachAuditEvent(ctx, asStaff, q, func(e *portal.AuditRecord) error {
			checkMatches(t, q, e)
			return nil
		})
		if err != nil {
			checkInvalid(t, "EachAuditEvent", err)
		}
	})
}

// checkInvalid fails t unless err is a refusal of the filter: invalid
// input, with a message to show beside the form.
func checkInvalid(t *testing.T, fn string, err error) {
	t.Helper()
	var pe *portal.Error
	if !errors.As(err, &pe) || !errors.Is(err, portal.ErrInvalid) || strings.TrimSpace(pe.Message) == "" {
		t.Fatalf("%s: %v, want a portal.Error of KindInvalid with a message", fn, err)
	}
}

// checkMatches fails t if e, returned for q, does not match the parts of q
// that are simple to check: the action and the time bounds.
func checkMatches(t *testing.T, q workflow.AuditQuery, e *portal.AuditRecord) {
	t.Helper()
	if q.Action != "" && string(e.Action) != q.Action {
		t.Fatalf("filter action %q returned a %s event", q.Action, e.Action)
	}
	if from, err := time.Parse(time.RFC3339Nano, q.From); err == nil && e.At.Before(from) {
		t.Fatalf("filter from %s returned an event at %s", q.From, e.At)
	}
	if to, err := time.Parse(time.RFC3339Nano, q.To); err == nil && !e.At.Before(to) {
		t.Fatalf("filter to %s returned an event at %s", q.To, e.At)
	}
}
