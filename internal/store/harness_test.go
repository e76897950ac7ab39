package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// Fixtures shared by the tests of every table. The new… ones store what they
// make and fail the test if the store refuses it; the demo… ones only build
// a valid value, for tests that store it themselves or spoil it first.

func newStore(t *testing.T) *Store {
	t.Helper()
	return New(pgtest.New(t))
}

// start marks t parallel, as a test with a database of its own may be, and
// returns the test's context and a store on that fresh database.
func start(t *testing.T) (context.Context, *Store) {
	t.Helper()
	t.Parallel()
	return t.Context(), newStore(t)
}

// poolConfig parses url, for tests that connect as someone else or to a
// database of their own.
func poolConfig(t *testing.T, url string) *pgxpool.Config {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// openPool connects with cfg until the test ends.
func openPool(t *testing.T, cfg *pgxpool.Config) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func demoCluster(name string) *portal.Cluster {
	return &portal.Cluster{Name: name, DisplayName: "Demo " + name, PrometheusURL: "https://prometheus." + name + ".2i2c.cloud",
		CredentialTTLDays: 90, Enabled: true, Policy: portal.DefaultPolicy()}
}

func newCluster(t *testing.T, s *Store, name string) *portal.Cluster {
	t.Helper()
	c := demoCluster(name)
	if err := s.CreateCluster(t.Context(), c); err != nil {
		t.Fatalf("CreateCluster(%s): %v", name, err)
	}
	return c
}

func newUser(t *testing.T, s *Store, subject string, role portal.Role) *portal.User {
	t.Helper()
	u := &portal.User{Issuer: "https://idp.example", Subject: subject, Email: subject + "@example.org",
		Name: "User " + subject, Role: role}
	if err := s.UpsertUser(t.Context(), u); err != nil {
		t.Fatalf("UpsertUser(%s): %v", subject, err)
	}
	return u
}

// people are who most request and credential tests need: staff, to decide
// requests, and a customer.
func people(t *testing.T, s *Store) (staff, alice *portal.User) {
	t.Helper()
	return newUser(t, s, "staff", portal.RoleStaff), newUser(t, s, "alice", portal.RoleCustomer)
}

func demoRequest(u *portal.User, c *portal.Cluster) *portal.Request {
	return &portal.Request{UserID: u.ID, ClusterID: c.ID, PublicKey: "age1demokey" + u.Subject,
		KeyType: portal.KeyAgeX25519, KeyFingerprint: "SHA256:demo-" + u.Subject,
		Justification: "Grafana dashboards for our community"}
}

func newRequest(t *testing.T, s *Store, u *portal.User, c *portal.Cluster) *portal.Request {
	t.Helper()
	r := demoRequest(u, c)
	if err := s.CreateRequest(t.Context(), r); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	return r
}

// approvedRequest is a request of u for c that staff approved.
func approvedRequest(t *testing.T, s *Store, u, staff *portal.User, c *portal.Cluster) *portal.Request {
	t.Helper()
	r := newRequest(t, s, u, c)
	if err := s.DecideRequest(t.Context(), r.ID, portal.StatusApproved, staff.ID, "ok"); err != nil {
		t.Fatalf("DecideRequest(approve): %v", err)
	}
	r.Status = portal.StatusApproved
	return r
}

// readRequest is r as the store reads it back, with the display fields of
// its cluster c and requester u.
func readRequest(r *portal.Request, c *portal.Cluster, u *portal.User) *portal.Request {
	read := *r
	read.ClusterName, read.RequesterEmail, read.RequesterName = c.Name, u.Email, u.Name
	read.ApprovalsRequired = c.Policy.Required()
	return &read
}

// demoCredential is a credential for r, valid from issued to expires. The
// hash only has to look like bcrypt to the schema.
func demoCredential(r *portal.Request, username string, issued, expires time.Time) *portal.Credential {
	return &portal.Credential{RequestID: r.ID, UserID: r.UserID, ClusterID: r.ClusterID, Username: username,
		PasswordHash: "$2a$10$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQR",
		Ciphertext:   []byte("age-encryption.org/v1\n" + username), KeyFingerprint: r.KeyFingerprint,
		IssuedAt: issued, ExpiresAt: expires}
}

// newCredential issues a credential called username to u on c, through an
// approved request, valid from issued to expires.
func newCredential(t *testing.T, s *Store, u, staff *portal.User, c *portal.Cluster, username string, issued, expires time.Time) *portal.Credential {
	t.Helper()
	cr := demoCredential(approvedRequest(t, s, u, staff, c), username, issued, expires)
	if err := s.CreateCredential(t.Context(), cr); err != nil {
		t.Fatalf("CreateCredential(%s): %v", username, err)
	}
	return cr
}

// readCredential is cr as the store reads it back: without its secrets,
// with the display fields of its cluster c and owner u.
func readCredential(cr *portal.Credential, c *portal.Cluster, u *portal.User) *portal.Credential {
	read := *cr
	read.Ciphertext, read.PasswordHash = nil, ""
	read.ClusterName, read.PrometheusURL, read.OwnerEmail = c.Name, c.PrometheusURL, u.Email
	return &read
}

// toMicroseconds equates times a test made with what PostgreSQL keeps of
// them.
var toMicroseconds = cmpopts.EquateApproxTime(time.Microsecond)

func systemEvent(action portal.Action) *portal.AuditEvent {
	return &portal.AuditEvent{Actor: portal.ActorSystem, Action: action}
}

// call is a store method called on a row that does not exist.
type call struct {
	name string
	call func() error
}

// wantNotFound runs each call as a subtest and wants portal.ErrNotFound
// from it.
func wantNotFound(t *testing.T, calls []call) {
	t.Helper()
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, portal.ErrNotFound) {
				t.Errorf("%s of a missing row = %v, want ErrNotFound", tt.name, err)
			}
		})
	}
}

// wantEmpty wants each listing, given nothing to list, to list nothing
// rather than fail.
func wantEmpty[T any](t *testing.T, lists ...func() ([]T, error)) {
	t.Helper()
	for i, list := range lists {
		if rows, err := list(); err != nil || len(rows) != 0 {
			t.Errorf("listing %d with nothing to list = %v, %v; want empty", i, rows, err)
		}
	}
}

// mutation spoils one field of a valid T.
type mutation[T any] struct {
	name   string
	mutate func(*T)
}

// wantInvalid runs each mutation of valid() as a subtest and wants create to
// refuse the result with portal.ErrInvalid.
func wantInvalid[T any](t *testing.T, valid func() *T, create func(context.Context, *T) error, tests []mutation[T]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := valid()
			tt.mutate(v)
			if err := create(t.Context(), v); !errors.Is(err, portal.ErrInvalid) {
				t.Errorf("create(%+v) = %v, want ErrInvalid", v, err)
			}
		})
	}
}
