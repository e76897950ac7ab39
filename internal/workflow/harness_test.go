package workflow_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// world is a database of its own and the service on it. Tests that share
// one keep apart by each working on a fixture of its own.
type world struct {
	st  *store.Store
	svc *workflow.Service
	// fixtures numbers the fixtures, to give their names and identities
	// a suffix no other fixture in the world has.
	fixtures atomic.Int64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, workflow.Options{})
}

// newWorldWith is a world whose service has opts.
func newWorldWith(t *testing.T, opts workflow.Options) *world {
	t.Helper()
	st := store.New(pgtest.New(t))
	return &world{st: st, svc: workflow.New(st, opts)}
}

// fixture is the people a test needs, one cluster taking requests and one
// that is not, all new to the world.
type fixture struct {
	*world
	n int64
	// sessions numbers the fixture's browser sessions.
	sessions atomic.Int64

	customerA, customerB *portal.User
	// staff decides what the others ask for; staffRequester is a staff
	// member who asks for a credential of their own.
	staff, staffRequester *portal.User

	open, closed *portal.Cluster
	// key is the age recipient requests are made for.
	key string
}

func (w *world) fixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{world: w, n: w.fixtures.Add(1)}
	f.customerA = f.user(t, "alice", portal.RoleCustomer)
	f.customerB = f.user(t, "bob", portal.RoleCustomer)
	f.staff = f.user(t, "sam", portal.RoleStaff)
	f.staffRequester = f.user(t, "rey", portal.RoleStaff)
	f.open = f.cluster(t, "awi-ciroh", true)
	f.closed = f.cluster(t, "retired", false)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f.key = id.Recipient().String()
	return f
}

// user is a new user; name picks the email, and with the fixture's number
// makes the identity.
func (f *fixture) user(t *testing.T, name string, role portal.Role) *portal.User {
	t.Helper()
	u := &portal.User{Issuer: "https://idp.example.org", Subject: fmt.Sprintf("%s-%d", name, f.n),
		Email: name + "@example.org", EmailVerified: true, Role: role}
	if role == portal.RoleStaff {
		u.Email = name + "@2i2c.org"
	}
	if err := f.st.UpsertUser(t.Context(), u); err != nil {
		t.Fatalf("user %s: %v", u.Subject, err)
	}
	return u
}

// clusterName is a cluster name no other fixture in the world uses.
func (f *fixture) clusterName(name string) string { return fmt.Sprintf("%s-%d", name, f.n) }

func (f *fixture) cluster(t *testing.T, name string, enabled bool) *portal.Cluster {
	t.Helper()
	name = f.clusterName(name)
	c := &portal.Cluster{Name: name, PrometheusURL: "https://prometheus." + name + ".2i2c.cloud",
		CredentialTTLDays: 90, Enabled: enabled}
	if err := f.st.CreateCluster(t.Context(), c); err != nil {
		t.Fatalf("cluster %s: %v", name, err)
	}
	return c
}

// as is u acting from a browser.
func as(u *portal.User) workflow.Actor {
	return workflow.Actor{User: u, IP: "192.0.2.1", UserAgent: "test"}
}

// requestInput is a request on the open cluster that passes every check.
func (f *fixture) requestInput() workflow.RequestInput {
	return workflow.RequestInput{Cluster: f.open.Name, PublicKey: f.key, Justification: "Dashboards for the research team."}
}

// request is a pending request of owner's.
func (f *fixture) request(t *testing.T, owner *portal.User) *portal.Request {
	t.Helper()
	r, err := f.svc.CreateRequest(t.Context(), as(owner), f.requestInput())
	if err != nil {
		t.Fatalf("request of %s: %v", owner.Subject, err)
	}
	return r
}

// credential is an active credential of owner's, approved by f.staff.
func (f *fixture) credential(t *testing.T, owner *portal.User) *portal.Credential {
	t.Helper()
	r := f.request(t, owner)
	ap, err := f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{})
	if err != nil {
		t.Fatalf("approving request %d of %s: %v", r.ID, owner.Subject, err)
	}
	return ap.Credential
}

// revoked is a credential of owner's that owner revoked, reporting it
// compromised or not.
func (f *fixture) revoked(t *testing.T, owner *portal.User, compromised bool) *portal.Credential {
	t.Helper()
	c := f.credential(t, owner)
	var err error
	if compromised {
		_, err = f.svc.ReportCompromised(t.Context(), as(owner), c.ID, "")
	} else {
		_, err = f.svc.Revoke(t.Context(), as(owner), c.ID, "No longer needed.")
	}
	if err != nil {
		t.Fatalf("revoking credential %d of %s: %v", c.ID, owner.Subject, err)
	}
	return c
}

// requestStatus is request id's status as stored now.
func (f *fixture) requestStatus(t *testing.T, id int64) portal.RequestStatus {
	t.Helper()
	r, err := f.st.RequestByID(t.Context(), id)
	if err != nil {
		t.Fatalf("request %d: %v", id, err)
	}
	return r.Status
}

// isRevoked reports whether credential id is revoked as stored now.
func (f *fixture) isRevoked(t *testing.T, id int64) bool {
	t.Helper()
	c, err := f.st.CredentialByID(t.Context(), id)
	if err != nil {
		t.Fatalf("credential %d: %v", id, err)
	}
	return c.RevokedAt != nil
}

// auditEvents are the events about a subject, newest first, as staff see
// them; action, when not "", narrows them to that action.
func (f *fixture) auditEvents(t *testing.T, subjectType string, subjectID int64, action portal.Action) []*portal.AuditRecord {
	t.Helper()
	q := workflow.AuditQuery{SubjectType: subjectType, SubjectID: fmt.Sprint(subjectID), Action: string(action)}
	page, err := f.svc.AuditEvents(t.Context(), as(f.staff), q, "", portal.MaxAuditPage)
	if err != nil {
		t.Fatalf("audit events of %s %d: %v", subjectType, subjectID, err)
	}
	return page.Events
}

// failedMessage is an email to customer B that failed for good.
func (f *fixture) failedMessage(t *testing.T) *portal.Message {
	t.Helper()
	ctx := t.Context()
	m := &portal.Message{Event: portal.ActionRequestApproved, Audience: portal.AudienceCustomer, UserID: &f.customerB.ID,
		Channel: portal.ChannelEmail, Recipient: f.customerB.Email, Subject: "Your access is ready", Text: "Ready."}
	if err := f.st.QueueMessages(ctx, m); err != nil {
		t.Fatal(err)
	}
	claimed, err := f.st.ClaimMessages(ctx, 1, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].ID != m.ID {
		t.Fatalf("claimed %v, %v; want message %d", claimed, err, m.ID)
	}
	if failed, err := f.st.MessageNotDelivered(ctx, m.ID, "550 mailbox unavailable", time.Minute, 0); err != nil || !failed {
		t.Fatalf("message not delivered: failed %t, %v; want failed", failed, err)
	}
	return m
}

// browserSession is a new session as scs stores it, signed in as nobody
// yet, and its key: what an actor acting from that browser carries.
func (f *fixture) browserSession(t *testing.T) string {
	t.Helper()
	key := store.SessionKey(fmt.Sprintf("token-%d-%d", f.n, f.sessions.Add(1)))
	if _, err := f.st.Pool().Exec(t.Context(), `INSERT INTO sessions (token, data, expiry) VALUES ($1, '\x00', now() + interval '1 hour')`, key); err != nil {
		t.Fatalf("session: %v", err)
	}
	return key
}

// signedIn is a session of owner's, as a sign-in records it, and its key.
func (f *fixture) signedIn(t *testing.T, owner *portal.User) (*portal.Session, string) {
	t.Helper()
	key := f.browserSession(t)
	if err := f.st.CreateUserSession(t.Context(), key, owner.ID, "192.0.2.1", "test"); err != nil {
		t.Fatalf("session of %s: %v", owner.Subject, err)
	}
	ss, err := f.st.UserSessionsPage(t.Context(), owner.ID, key, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Current {
			return s, key
		}
	}
	t.Fatalf("the new session of %s is not listed", owner.Subject)
	return nil, ""
}

// token is a new read and request token of owner's.
func (f *fixture) token(t *testing.T, owner *portal.User) *workflow.NewToken {
	t.Helper()
	nt, err := f.svc.CreateToken(t.Context(), as(owner), workflow.TokenInput{Name: "ci", Scopes: []string{"read", "request"}})
	if err != nil {
		t.Fatal(err)
	}
	return nt
}
