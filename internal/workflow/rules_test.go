package workflow_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// The actors of the rules table, its columns.
const (
	anonymous = iota
	customerA
	customerB
	staff
	// staffRequester is a staff member acting on their own request or
	// credential.
	staffRequester
	system
	actorCount
)

var actorNames = [actorCount]string{"anonymous", "customer A", "customer B", "staff", "staff requester", "system"}

// result is what one actor gets from one action: success, or a refusal of
// err's kind. For an action that lists, listed says whether the cell's
// subject is on the list.
type result struct {
	allowed bool
	err     error
	listed  bool
}

var (
	allowed   = result{allowed: true}
	listed    = result{allowed: true, listed: true}
	notFound  = result{err: portal.ErrNotFound}
	forbidden = result{err: portal.ErrForbidden}
)

// rule is one action's row: what each actor gets, in the order of the
// actor constants.
type rule [actorCount]result

// cell is one actor about to do one action, on a fixture of its own: an
// approval consumes the request, a revocation the credential.
type cell struct {
	*fixture
	actor workflow.Actor
	// name is the actor as the audit log names them.
	name string
	// owner is whose the cell's subject (request, credential) is: the
	// actor's own for customer A and the staff requester, customer A's for
	// everyone else.
	owner *portal.User
	want  result
}

// checkListed fails the test if the cell's subject is on the list when it
// should not be, or the other way round. A list that should have been
// refused fails the cell anyway.
func (c *cell) checkListed(t *testing.T, on bool) {
	t.Helper()
	if c.want.allowed && on != c.want.listed {
		t.Errorf("subject on the list: %t, want %t", on, c.want.listed)
	}
}

func userID(a workflow.Actor) int64 {
	if a.User == nil {
		return 0
	}
	return a.User.ID
}

// TestRules is who may do what: every action that takes an Actor, done by
// each kind of actor, each time on people, clusters, requests and
// credentials no other cell touches.
func TestRules(t *testing.T) {
	t.Parallel()
	// Each rule lists, in order, what anonymous, customer A, customer B,
	// staff, the staff requester and the system get. allowed on a list
	// means the subject is not on it; listed, that it is.
	tests := []struct {
		action string
		want   rule
		// isolated gives each cell a database of its own, for an action
		// that reads the whole of it: a count, the audit chain.
		isolated bool
		// run prepares the cell's subject, acts, and on success checks
		// that the action took effect.
		run func(t *testing.T, c *cell) error
	}{
		{
			action: "CreateRequest",
			want:   rule{forbidden, allowed, allowed, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				r, err := c.svc.CreateRequest(t.Context(), c.actor, c.requestInput())
				if err == nil && (r.Status != portal.StatusPending || r.UserID != userID(c.actor)) {
					t.Errorf("request %s of user %d, want pending of %d", r.Status, r.UserID, userID(c.actor))
				}
				return err
			},
		},
		{
			// Someone else's request does not exist, as far as they know.
			action: "Request",
			want:   rule{notFound, allowed, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				got, err := c.svc.Request(t.Context(), c.actor, r.ID)
				if err == nil && got.ID != r.ID {
					t.Errorf("got request %d, want %d", got.ID, r.ID)
				}
				return err
			},
		},
		{
			action: "Requests",
			want:   rule{forbidden, listed, allowed, listed, listed, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				rs, err := c.svc.Requests(t.Context(), c.actor, portal.StatusPending, firstPage)
				if err == nil {
					c.checkListed(t, slices.ContainsFunc(rs.Items, func(x *portal.Request) bool { return x.ID == r.ID }))
				}
				return err
			},
		},
		{
			// One's own only, staff included.
			action: "RequestSummaries",
			want:   rule{forbidden, listed, allowed, allowed, listed, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				rs, err := c.svc.RequestSummaries(t.Context(), c.actor, firstPage)
				if err == nil {
					c.checkListed(t, slices.ContainsFunc(rs.Items, func(x *portal.Request) bool { return x.ID == r.ID }))
				}
				return err
			},
		},
		{
			action: "Queue",
			want:   rule{forbidden, forbidden, forbidden, listed, listed, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				rs, err := c.svc.Queue(t.Context(), c.actor, firstPage)
				if err == nil {
					c.checkListed(t, slices.ContainsFunc(rs.Items, func(x *portal.Request) bool { return x.ID == r.ID }))
				}
				return err
			},
		},
		{
			// Only the requester cancels; staff deny instead.
			action: "CancelRequest",
			want:   rule{notFound, allowed, notFound, forbidden, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				_, err := c.svc.CancelRequest(t.Context(), c.actor, r.ID)
				wantStatus := portal.StatusPending
				if err == nil {
					wantStatus = portal.StatusCancelled
				}
				if got := c.requestStatus(t, r.ID); got != wantStatus {
					t.Errorf("request %s, want %s", got, wantStatus)
				}
				return err
			},
		},
		{
			// Staff decide, but never on their own request.
			action: "Approve",
			want:   rule{forbidden, forbidden, forbidden, allowed, forbidden, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				ap, err := c.svc.Approve(t.Context(), c.actor, r.ID, workflow.ApproveInput{})
				wantStatus := portal.StatusPending
				if err == nil {
					wantStatus = portal.StatusApproved
					if cred := ap.Credential; cred.RequestID != r.ID || cred.UserID != c.owner.ID {
						t.Errorf("credential for request %d of user %d, want %d of %d", cred.RequestID, cred.UserID, r.ID, c.owner.ID)
					}
				}
				if got := c.requestStatus(t, r.ID); got != wantStatus {
					t.Errorf("request %s, want %s", got, wantStatus)
				}
				return err
			},
		},
		{
			action: "Deny",
			want:   rule{forbidden, forbidden, forbidden, allowed, forbidden, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				_, err := c.svc.Deny(t.Context(), c.actor, r.ID, "Use the shared dashboard instead.")
				wantStatus := portal.StatusPending
				if err == nil {
					wantStatus = portal.StatusDenied
				}
				if got := c.requestStatus(t, r.ID); got != wantStatus {
					t.Errorf("request %s, want %s", got, wantStatus)
				}
				return err
			},
		},
		{
			// The confirmation page of a cancellation refuses whom
			// CancelRequest refuses: staff see the request but deny it.
			action: "RequestToCancel",
			want:   rule{notFound, allowed, notFound, forbidden, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				_, err := c.svc.RequestToCancel(t.Context(), c.actor, r.ID)
				if got := c.requestStatus(t, r.ID); got != portal.StatusPending {
					t.Errorf("request %s, want pending", got)
				}
				return err
			},
		},
		{
			// The confirmation pages of a decision refuse whom Approve and
			// Deny refuse: the staff requester never sees an Approve button
			// for their own request.
			action: "RequestToDecide",
			want:   rule{forbidden, forbidden, forbidden, allowed, forbidden, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				for _, verb := range []string{"approve", "deny"} {
					if _, err := c.svc.RequestToDecide(t.Context(), c.actor, r.ID, verb); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			action: "Credential",
			want:   rule{notFound, allowed, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				got, err := c.svc.Credential(t.Context(), c.actor, cred.ID)
				if err == nil && got.ID != cred.ID {
					t.Errorf("got credential %d, want %d", got.ID, cred.ID)
				}
				return err
			},
		},
		{
			// Everyone lists their own, staff included.
			action: "Credentials",
			want:   rule{forbidden, listed, allowed, allowed, listed, forbidden},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				cs, err := c.svc.Credentials(t.Context(), c.actor, firstPage)
				if err == nil {
					c.checkListed(t, slices.ContainsFunc(cs.Items, func(x *portal.Credential) bool { return x.ID == cred.ID }))
				}
				return err
			},
		},
		{
			// The secret is the owner's alone: staff cannot download it.
			action: "Download",
			want:   rule{notFound, allowed, notFound, notFound, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				data, _, err := c.svc.Download(t.Context(), c.actor, cred.ID)
				if err == nil && !bytes.HasPrefix(data, []byte("age-encryption.org/v1")) {
					t.Errorf("downloaded %.40q, want an age file", data)
				}
				return err
			},
		},
		{
			action: "Revoke",
			want:   rule{notFound, allowed, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				got, err := c.svc.Revoke(t.Context(), c.actor, cred.ID, "No longer needed.")
				if err == nil && (got.RevokedAt == nil || got.Compromised) {
					t.Errorf("credential revoked at %v, compromised %t; want revoked, not compromised", got.RevokedAt, got.Compromised)
				}
				if err != nil && c.isRevoked(t, cred.ID) {
					t.Error("refused, yet the credential is revoked")
				}
				return err
			},
		},
		{
			// Only the owner knows it leaked; staff revoke instead.
			action: "ReportCompromised",
			want:   rule{notFound, allowed, notFound, notFound, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				rep, err := c.svc.ReportCompromised(t.Context(), c.actor, cred.ID, "Pasted into a public notebook.")
				if err == nil && (rep.Credential.RevokedAt == nil || !rep.Credential.Compromised || rep.DetailsWithheld) {
					t.Errorf("credential revoked at %v, compromised %t, details withheld %t; want revoked, compromised, kept",
						rep.Credential.RevokedAt, rep.Credential.Compromised, rep.DetailsWithheld)
				}
				if err != nil && c.isRevoked(t, cred.ID) {
					t.Error("refused, yet the credential is revoked")
				}
				return err
			},
		},
		{
			action: "Renew",
			want:   rule{notFound, allowed, notFound, notFound, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				r, err := c.svc.Renew(t.Context(), c.actor, cred.ID)
				if err == nil && (r.Status != portal.StatusPending || r.UserID != c.owner.ID ||
					r.RenewsCredentialID == nil || *r.RenewsCredentialID != cred.ID) {
					t.Errorf("request %s of user %d renewing %v, want pending of %d renewing %d",
						r.Status, r.UserID, r.RenewsCredentialID, c.owner.ID, cred.ID)
				}
				return err
			},
		},
		{
			action: "RenewWithKey",
			want:   rule{notFound, allowed, notFound, notFound, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				in := c.requestInput()
				in.Justification = "Dashboards with another key."
				r, err := c.svc.RenewWithKey(t.Context(), c.actor, cred.ID, in)
				if err == nil && (r.RenewsCredentialID == nil || *r.RenewsCredentialID != cred.ID || r.UserID != c.owner.ID) {
					t.Errorf("request of user %d renewing %v, want of %d renewing %d", r.UserID, r.RenewsCredentialID, c.owner.ID, cred.ID)
				}
				return err
			},
		},
		{
			action: "RenewalDraft",
			want:   rule{notFound, allowed, notFound, notFound, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				cred := c.credential(t, c.owner)
				r, err := c.svc.RenewalDraft(t.Context(), c.actor, cred.ID)
				if err == nil && r.ID != cred.RequestID {
					t.Errorf("draft from request %d, want %d", r.ID, cred.RequestID)
				}
				return err
			},
		},
		{
			action: "Revocations",
			want:   rule{forbidden, forbidden, forbidden, listed, listed, forbidden},
			run: func(t *testing.T, c *cell) error {
				cred := c.revoked(t, c.owner, false)
				cs, err := c.svc.Revocations(t.Context(), c.actor, firstPage)
				if err == nil {
					c.checkListed(t, slices.ContainsFunc(cs.Items, func(x *portal.Credential) bool { return x.ID == cred.ID }))
				}
				return err
			},
		},
		{
			action:   "RevocationCount",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				c.revoked(t, c.owner, false)
				n, err := c.svc.RevocationCount(t.Context(), c.actor)
				if err == nil && n != (portal.Count{N: 1}) {
					t.Errorf("%v revocations, want 1", n)
				}
				return err
			},
		},
		{
			action:   "RecentCompromises",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				c.revoked(t, c.owner, true)
				n, err := c.svc.RecentCompromises(t.Context(), c.actor)
				if err == nil && n != 1 {
					t.Errorf("%d recent compromises, want 1", n)
				}
				return err
			},
		},
		{
			// The outbox is the staff's: a customer's request tells them.
			action:   "Outbox",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, listed, listed, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				page, err := c.svc.Outbox(t.Context(), c.actor, "", 0, 0)
				if err == nil {
					c.checkListed(t, slices.ContainsFunc(page.Messages, func(m *portal.Message) bool {
						return m.Event == portal.ActionRequestCreated && strings.HasSuffix(m.Link, fmt.Sprintf("#request-%d", r.ID))
					}))
				}
				return err
			},
		},
		{
			action:   "RetryMessage",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				m := c.failedMessage(t)
				err := c.svc.RetryMessage(t.Context(), c.actor, m.ID)
				if got, gerr := c.st.MessageByID(t.Context(), m.ID); err == nil && (gerr != nil || got.Status != portal.MessageQueued) {
					t.Errorf("message after retry: %v, %v; want queued", got, gerr)
				}
				return err
			},
		},
		{
			action:   "StaffSummary",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				c.request(t, c.owner)
				c.failedMessage(t)
				sum, err := c.svc.StaffSummary(t.Context(), c.actor)
				if err == nil && (sum.Pending != 1 || sum.Failing != 1) {
					t.Errorf("summary %+v, want 1 pending and 1 failing", sum)
				}
				return err
			},
		},
		{
			// Open to all, but only staff see the clusters that take no
			// requests; listed is the closed one.
			action: "Clusters",
			want:   rule{allowed, allowed, allowed, listed, listed, allowed},
			run: func(t *testing.T, c *cell) error {
				cs, err := c.svc.Clusters(t.Context(), c.actor)
				if err == nil {
					if !slices.ContainsFunc(cs, func(x *portal.Cluster) bool { return x.ID == c.open.ID }) {
						t.Errorf("%s is not on the list", c.open.Name)
					}
					c.checkListed(t, slices.ContainsFunc(cs, func(x *portal.Cluster) bool { return x.ID == c.closed.ID }))
				}
				return err
			},
		},
		{
			// As Clusters, a page at a time; isolated, so that the page
			// holds the fixture's clusters and no other's.
			action:   "ClustersPage",
			isolated: true,
			want:     rule{allowed, allowed, allowed, listed, listed, allowed},
			run: func(t *testing.T, c *cell) error {
				cs, err := c.svc.ClustersPage(t.Context(), c.actor, firstPage)
				if err == nil {
					if !slices.ContainsFunc(cs.Items, func(x *portal.Cluster) bool { return x.ID == c.open.ID }) {
						t.Errorf("%s is not on the page", c.open.Name)
					}
					c.checkListed(t, slices.ContainsFunc(cs.Items, func(x *portal.Cluster) bool { return x.ID == c.closed.ID }))
				}
				return err
			},
		},
		{
			action: "Cluster",
			want:   rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				got, err := c.svc.Cluster(t.Context(), c.actor, c.closed.ID)
				if err == nil && got.Name != c.closed.Name {
					t.Errorf("got cluster %s, want %s", got.Name, c.closed.Name)
				}
				return err
			},
		},
		{
			// A closed cluster is staff's to see; to others it does not
			// exist, as on the request form.
			action: "ClusterNamed",
			want:   rule{notFound, notFound, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				got, err := c.svc.ClusterNamed(t.Context(), c.actor, c.closed.Name)
				if err == nil && got.ID != c.closed.ID {
					t.Errorf("got cluster %s, want %s", got.Name, c.closed.Name)
				}
				return err
			},
		},
		{
			action: "CreateCluster",
			want:   rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				name := c.clusterName("leap")
				err := c.svc.CreateCluster(t.Context(), c.actor, &portal.Cluster{Name: name,
					PrometheusURL: "https://prometheus." + name + ".2i2c.cloud", CredentialTTLDays: 30, Enabled: true})
				_, ferr := c.st.ClusterByName(t.Context(), name)
				if exists := ferr == nil; exists != (err == nil) {
					t.Errorf("cluster exists: %t (%v), after %v", exists, ferr, err)
				}
				return err
			},
		},
		{
			action: "UpdateCluster",
			want:   rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				edit := *c.open
				edit.DisplayName = "AWI CIROH"
				err := c.svc.UpdateCluster(t.Context(), c.actor, &edit)
				got, ferr := c.st.ClusterByID(t.Context(), c.open.ID)
				if ferr != nil {
					t.Fatal(ferr)
				}
				if renamed := got.DisplayName == edit.DisplayName; renamed != (err == nil) {
					t.Errorf("display name %q after %v", got.DisplayName, err)
				}
				return err
			},
		},
		{
			action: "RotateSyncToken",
			want:   rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				token, err := c.svc.RotateSyncToken(t.Context(), c.actor, c.open.Name)
				if err == nil {
					if _, err := c.svc.ClusterForSyncToken(t.Context(), c.open.Name, token); err != nil {
						t.Errorf("the new token does not open %s: %v", c.open.Name, err)
					}
				}
				return err
			},
		},
		{
			// The log names everyone: staff only.
			action: "AuditEvents",
			want:   rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				q := workflow.AuditQuery{SubjectType: portal.SubjectRequest, SubjectID: fmt.Sprint(r.ID)}
				page, err := c.svc.AuditEvents(t.Context(), c.actor, q, "", 10)
				if err == nil && len(page.Events) == 0 {
					t.Error("no events, want the request's")
				}
				return err
			},
		},
		{
			action: "EachAuditEvent",
			want:   rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				r := c.request(t, c.owner)
				q := workflow.AuditQuery{SubjectType: portal.SubjectRequest, SubjectID: fmt.Sprint(r.ID)}
				n := 0
				err := c.svc.EachAuditEvent(t.Context(), c.actor, q, func(*portal.AuditRecord) error {
					n++
					return nil
				})
				if err == nil && n == 0 {
					t.Error("no events, want the request's")
				}
				return err
			},
		},
		{
			action:   "LastAuditVerification",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				if _, err := c.svc.VerifyAudit(t.Context(), workflow.Command("portal audit verify"), 0, nil); err != nil {
					t.Fatal(err)
				}
				v, err := c.svc.LastAuditVerification(t.Context(), c.actor)
				if err == nil && v.VerifiedBy != "portal audit verify" {
					t.Errorf("verified by %q, want portal audit verify", v.VerifiedBy)
				}
				return err
			},
		},
		{
			// A visitor is not the system: only the command line and staff
			// walk the chain.
			action:   "VerifyAudit",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, allowed, allowed, allowed},
			run: func(t *testing.T, c *cell) error {
				c.request(t, c.owner)
				v, err := c.svc.VerifyAudit(t.Context(), c.actor, 0, nil)
				if err == nil && (!v.OK() || v.Events == 0 || v.VerifiedBy != c.name) {
					t.Errorf("verification of %d events by %q, ok %t; want the request's event, by %q, ok",
						v.Events, v.VerifiedBy, v.OK(), c.name)
				}
				return err
			},
		},
		{
			// Anyone's refused attempt is worth a record, under their name.
			action: "Record",
			want:   rule{allowed, allowed, allowed, allowed, allowed, allowed},
			run: func(t *testing.T, c *cell) error {
				err := c.svc.Record(t.Context(), c.actor, portal.ActionAccessRefused, portal.SubjectCluster, c.open.ID, nil)
				if err == nil {
					es := c.auditEvents(t, portal.SubjectCluster, c.open.ID, portal.ActionAccessRefused)
					if len(es) != 1 || es[0].Actor != c.name {
						t.Errorf("%d access.refused events, want one by %q", len(es), c.name)
					}
				}
				return err
			},
		},
		{
			// Whoever held the browser before, the sign-in is recorded as
			// the person signing in.
			action: "SignIn",
			want:   rule{allowed, allowed, allowed, allowed, allowed, allowed},
			run: func(t *testing.T, c *cell) error {
				u := &portal.User{Issuer: "https://idp.example.org", Subject: fmt.Sprintf("carol-%d", c.n),
					Email: "carol@example.org", Role: portal.RoleCustomer}
				c.actor.SessionKey = c.browserSession(t)
				err := c.svc.SignIn(t.Context(), c.actor, u)
				if err == nil {
					es := c.auditEvents(t, portal.SubjectUser, u.ID, portal.ActionSignedIn)
					if u.ID == 0 || len(es) != 1 || es[0].ActorID == nil || *es[0].ActorID != u.ID || es[0].Actor != u.Email {
						t.Errorf("user %d signed in; %d events, want one by %s", u.ID, len(es), u.Email)
					}
					// The browser's session is now Carol's, and listed as hers.
					got, err := sessionUser(t, c.svc, c.actor.SessionKey, u.ID)
					if err != nil || got.ID != u.ID {
						t.Errorf("the signed-in session's user: %v, %v; want user %d", got, err, u.ID)
					}
				}
				return err
			},
		},
		{
			// A person's sessions are theirs and staff's to see.
			action: "Sessions",
			want:   rule{notFound, listed, notFound, listed, listed, notFound},
			run: func(t *testing.T, c *cell) error {
				sess, _ := c.signedIn(t, c.owner)
				ps, err := c.svc.Sessions(t.Context(), c.actor, c.owner.ID, firstPage)
				if err == nil {
					if ps.Person.ID != c.owner.ID {
						t.Errorf("sessions of user %d, want %d", ps.Person.ID, c.owner.ID)
					}
					c.checkListed(t, slices.ContainsFunc(ps.Sessions, func(s *portal.Session) bool { return s.ID == sess.ID }))
				}
				return err
			},
		},
		{
			// The owner signs another browser out; staff end anyone's.
			action: "EndSession",
			want:   rule{notFound, allowed, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				sess, key := c.signedIn(t, c.owner)
				ended, err := c.svc.EndSession(t.Context(), c.actor, sess.ID)
				_, gone := sessionUser(t, c.svc, key, c.owner.ID)
				if (err == nil) != errors.Is(gone, portal.ErrNotFound) {
					t.Errorf("EndSession: %v; the session after: %v", err, gone)
				}
				if err == nil {
					if ended.ID != sess.ID {
						t.Errorf("ended session %d, want %d", ended.ID, sess.ID)
					}
					if es := c.auditEvents(t, portal.SubjectUser, c.owner.ID, portal.ActionSessionEnded); len(es) != 1 || es[0].Actor != c.name {
						t.Errorf("%d session_ended events, want one by %s", len(es), c.name)
					}
				}
				return err
			},
		},
		{
			// Signing out everywhere is the owner's; staff do it for anyone.
			action: "EndSessions",
			want:   rule{notFound, allowed, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				_, first := c.signedIn(t, c.owner)
				_, second := c.signedIn(t, c.owner)
				n, err := c.svc.EndSessions(t.Context(), c.actor, c.owner.ID)
				for _, key := range []string{first, second} {
					_, gone := sessionUser(t, c.svc, key, c.owner.ID)
					if (err == nil) != errors.Is(gone, portal.ErrNotFound) {
						t.Errorf("EndSessions: %v; a session after: %v", err, gone)
					}
				}
				if err == nil {
					if n != 2 {
						t.Errorf("ended %d sessions, want 2", n)
					}
					if es := c.auditEvents(t, portal.SubjectUser, c.owner.ID, portal.ActionSessionsEnded); len(es) != 1 || es[0].Actor != c.name {
						t.Errorf("%d sessions_ended events, want one by %s", len(es), c.name)
					}
				}
				return err
			},
		},
		{
			// Isolated, so that the first page holds the owner, whoever
			// else the other cells make.
			action:   "People",
			isolated: true,
			want:     rule{forbidden, forbidden, forbidden, listed, listed, forbidden},
			run: func(t *testing.T, c *cell) error {
				c.signedIn(t, c.owner)
				page, err := c.svc.People(t.Context(), c.actor, c.owner.Subject[:3], firstPage)
				if err == nil {
					ps := page.Items
					i := slices.IndexFunc(ps, func(p *portal.Person) bool { return p.ID == c.owner.ID })
					c.checkListed(t, i >= 0)
					if i >= 0 && ps[i].OpenSessions != 1 {
						t.Errorf("%d open sessions of the owner, want 1", ps[i].OpenSessions)
					}
				}
				return err
			},
		},
		{
			// A signed-in person makes tokens for themself; the system and
			// visitors have no one for a token to act for.
			action: "CreateToken",
			want:   rule{forbidden, allowed, allowed, allowed, allowed, forbidden},
			run: func(t *testing.T, c *cell) error {
				nt, err := c.svc.CreateToken(t.Context(), c.actor, workflow.TokenInput{Name: "grafana sync", Scopes: []string{"read", "request"}})
				if err == nil {
					if nt.UserID != userID(c.actor) || !strings.HasPrefix(nt.Secret, portal.TokenPrefix) {
						t.Errorf("token of user %d, want %d, starting %s", nt.UserID, userID(c.actor), portal.TokenPrefix)
					}
					if es := c.auditEvents(t, portal.SubjectToken, nt.ID, portal.ActionTokenCreated); len(es) != 1 || es[0].Actor != c.name {
						t.Errorf("%d token.created events, want one by %s", len(es), c.name)
					}
				}
				return err
			},
		},
		{
			// A person's tokens are theirs and staff's to see.
			action: "Tokens",
			want:   rule{notFound, listed, notFound, listed, listed, notFound},
			run: func(t *testing.T, c *cell) error {
				nt := c.token(t, c.owner)
				ts, err := c.svc.Tokens(t.Context(), c.actor, c.owner.ID, firstPage)
				if err == nil {
					c.checkListed(t, slices.ContainsFunc(ts.Items, func(x *portal.Token) bool { return x.ID == nt.ID }))
				}
				return err
			},
		},
		{
			// The owner revokes their token; staff revoke anyone's.
			action: "RevokeToken",
			want:   rule{notFound, allowed, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				nt := c.token(t, c.owner)
				_, err := c.svc.RevokeToken(t.Context(), c.actor, nt.ID)
				_, _, use := c.svc.TokenUser(t.Context(), nt.Secret, "192.0.2.1")
				if (err == nil) != errors.Is(use, portal.ErrUnauthorized) {
					t.Errorf("RevokeToken: %v; the token after: %v", err, use)
				}
				if err == nil {
					if es := c.auditEvents(t, portal.SubjectToken, nt.ID, portal.ActionTokenRevoked); len(es) != 1 || es[0].Actor != c.name {
						t.Errorf("%d token.revoked events, want one by %s", len(es), c.name)
					}
				}
				return err
			},
		},
		{
			// Every token of a person at once: theirs, or staff's for
			// someone who left.
			action: "RevokeTokens",
			want:   rule{notFound, allowed, notFound, allowed, allowed, notFound},
			run: func(t *testing.T, c *cell) error {
				first, second := c.token(t, c.owner), c.token(t, c.owner)
				n, err := c.svc.RevokeTokens(t.Context(), c.actor, c.owner.ID)
				for _, nt := range []*workflow.NewToken{first, second} {
					_, _, use := c.svc.TokenUser(t.Context(), nt.Secret, "192.0.2.1")
					if (err == nil) != errors.Is(use, portal.ErrUnauthorized) {
						t.Errorf("RevokeTokens: %v; a token after: %v", err, use)
					}
				}
				if err == nil {
					if n != 2 {
						t.Errorf("revoked %d tokens, want 2", n)
					}
					if es := c.auditEvents(t, portal.SubjectUser, c.owner.ID, portal.ActionTokensRevoked); len(es) != 1 || es[0].Actor != c.name {
						t.Errorf("%d tokens_revoked events, want one by %s", len(es), c.name)
					}
				}
				return err
			},
		},
	}

	// A new action that takes an Actor needs its rule here.
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.action] = true
	}
	service, actorType := reflect.TypeFor[*workflow.Service](), reflect.TypeFor[workflow.Actor]()
	for i := range service.NumMethod() {
		m := service.Method(i)
		for j := range m.Type.NumIn() {
			if m.Type.In(j) == actorType && !covered[m.Name] {
				t.Errorf("Service.%s takes an Actor but has no rule", m.Name)
			}
		}
	}

	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			t.Parallel()
			// A database costs far more than a fixture: the cells of an
			// action share one unless the action reads all of it.
			var shared *world
			if !tt.isolated {
				shared = newWorld(t)
			}
			for who := range actorCount {
				want := tt.want[who]
				t.Run(actorNames[who], func(t *testing.T) {
					t.Parallel()
					if want == (result{}) {
						t.Fatal("no rule for this actor")
					}
					w := shared
					if w == nil {
						w = newWorld(t)
					}
					f := w.fixture(t)
					c := &cell{fixture: f, owner: f.customerA, want: want}
					switch who {
					case anonymous:
						c.actor, c.name = workflow.Actor{IP: "192.0.2.9", UserAgent: "test"}, portal.ActorAnonymous
					case customerA:
						c.actor, c.name = as(f.customerA), f.customerA.Email
					case customerB:
						c.actor, c.name = as(f.customerB), f.customerB.Email
					case staff:
						c.actor, c.name = as(f.staff), f.staff.Email
					case staffRequester:
						c.actor, c.name, c.owner = as(f.staffRequester), f.staffRequester.Email, f.staffRequester
					case system:
						c.actor, c.name = workflow.System, portal.ActorSystem
					}
					err := tt.run(t, c)
					switch {
					case want.allowed && err != nil:
						t.Errorf("%s: %v, want success", tt.action, err)
					case !want.allowed && !errors.Is(err, want.err):
						t.Errorf("%s: %v, want %v", tt.action, err, want.err)
					}
				})
			}
		})
	}
}

// TestNoRequestIsTheSystem: an actor made from a request that has neither a
// user nor an address (a proxy that sends no usable client address) is a
// visitor, never the system, which alone may walk the chain without staff.
func TestNoRequestIsTheSystem(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	if _, err := w.svc.VerifyAudit(t.Context(), workflow.Actor{}, 0, nil); !errors.Is(err, portal.ErrForbidden) {
		t.Errorf("VerifyAudit by an actor with no user and no address: %v, want forbidden", err)
	}
	if err := w.svc.Record(t.Context(), workflow.Actor{}, portal.ActionSignInFailed, "", 0, nil); err != nil {
		t.Fatal(err)
	}
	rs, err := w.st.AuditEvents(t.Context(), portal.AuditFilter{Action: portal.ActionSignInFailed}, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Actor != portal.ActorAnonymous {
		t.Errorf("recorded %d events; the actor of the first is %q, want %q", len(rs), rs[0].Actor, portal.ActorAnonymous)
	}
}

// sessionUser is the user a browser's session keyed key signs in, if it is
// userID, as a page view opens it.
func sessionUser(t *testing.T, svc *workflow.Service, key string, userID int64) (*portal.User, error) {
	t.Helper()
	o, err := svc.OpenSession(t.Context(), key, "192.0.2.1", "test")
	if err != nil {
		return nil, err
	}
	return svc.SessionUser(o, userID)
}
