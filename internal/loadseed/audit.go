// Package loadseed sets up what the measuring tools (the load test and the
// audit benchmark) measure: a database of their own, a large, realistic
// audit log written into it in bulk, the wait for the portal under test and
// the reading of its resident memory.
package loadseed

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// Columns are the audit_events columns an EventSource fills, in order.
var Columns = []string{"at", "actor_id", "actor", "action", "subject_type", "subject_id", "cluster_id", "details", "ip", "user_agent", "prev_hash", "hash"}

// CopyAuditEvents writes the events of src into audit_events with COPY.
// The table must be empty, or its chain would break at the first event.
func CopyAuditEvents(ctx context.Context, pool *pgxpool.Pool, src *EventSource) error {
	copied, err := pool.CopyFrom(ctx, pgx.Identifier{"audit_events"}, Columns, src)
	if err != nil {
		return fmt.Errorf("seed audit events: %w", err)
	}
	if copied != int64(src.n) {
		return fmt.Errorf("seed audit events: copied %d of %d", copied, src.n)
	}
	return nil
}

// User is a person the events name as actor.
type User struct {
	ID    int64
	Email string
	Staff bool
}

// Cluster is a cluster the events are about.
type Cluster struct {
	ID   int64
	Name string
}

// EventSource makes audit events for COPY one at a time, so that seeding a
// million takes no more memory than seeding ten. Each event's hash follows
// from the one before, from the genesis hash, as the portal writes them, so
// `portal audit verify` passes on a log it wrote into an empty table.
type EventSource struct {
	n, i      int
	rng       *rand.Rand
	zipf      *rand.Zipf
	customers []User
	staff     []User
	clusters  []Cluster
	start     time.Time
	step      time.Duration
	prev      []byte
	requests  int64
	creds     int64
	row       []any
	err       error
}

// NewEventSource returns a source of n events spread over the year before
// now: a plausible mix of what the portal records, by users (a few customers
// busy, most not; staff deciding) about clusters. users must hold at least
// one member of staff and two customers, clusters at least one cluster.
func NewEventSource(n int, users []User, clusters []Cluster) *EventSource {
	rng := rand.New(rand.NewPCG(2026, 11))
	s := &EventSource{n: n, rng: rng, clusters: clusters, prev: portal.GenesisHash()}
	for _, u := range users {
		if u.Staff {
			s.staff = append(s.staff, u)
		} else {
			s.customers = append(s.customers, u)
		}
	}
	// A few customers are busy, most are not.
	s.zipf = rand.NewZipf(rng, 1.3, 2, uint64(len(s.customers)-1))
	s.start = time.Now().UTC().AddDate(-1, 0, 0)
	s.step = 365 * 24 * time.Hour / time.Duration(max(n, 1))
	return s
}

var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
	"curl/8.5.0",
	"python-requests/2.32.3",
}

// Next makes the next event; false at the end or after an error.
func (s *EventSource) Next() bool {
	if s.err != nil || s.i >= s.n {
		return false
	}
	e := s.event()
	details, err := portal.CanonicalDetails(e.Details)
	if err != nil {
		s.err = err
		return false
	}
	hash, err := e.ChainHash(s.prev)
	if err != nil {
		s.err = err
		return false
	}
	s.row = []any{e.At, e.ActorID, e.Actor, string(e.Action), e.SubjectType, e.SubjectID, e.ClusterID,
		json.RawMessage(details), e.IP, e.UserAgent, s.prev, hash}
	s.prev = hash
	s.i++
	return true
}

// Values returns the event Next made, in the order of Columns.
func (s *EventSource) Values() ([]any, error) { return s.row, nil }

// Err returns the error that stopped Next, if any.
func (s *EventSource) Err() error { return s.err }

// BusiestCustomer returns the customer who acts most often in the events.
func (s *EventSource) BusiestCustomer() User { return s.customers[0] }

// event is the next event: a plausible mix of what the portal records.
func (s *EventSource) event() *portal.AuditEvent {
	r := s.rng
	cust := s.customers[s.zipf.Uint64()]
	staff := s.staff[r.IntN(len(s.staff))]
	cl := s.clusters[r.IntN(len(s.clusters))]
	e := &portal.AuditEvent{
		At: s.start.Add(time.Duration(s.i) * s.step).Truncate(time.Microsecond),
		IP: fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254)), UserAgent: userAgents[r.IntN(len(userAgents))],
	}
	by := func(u User) { e.Actor, e.ActorID = u.Email, &u.ID }
	about := func(typ string, id int64) { e.SubjectType, e.SubjectID = typ, &id }
	onCluster := func() { e.ClusterID = &cl.ID }
	aRequest := func() int64 { return 1 + r.Int64N(max(s.requests, 1)) }
	aCredential := func() int64 { return 1 + r.Int64N(max(s.creds, 1)) }
	switch p := r.IntN(1000); {
	case p < 350:
		by(cust)
		e.Action = portal.ActionSignedIn
		about(portal.SubjectUser, cust.ID)
		e.Details = map[string]any{"role": "customer"}
	case p < 500:
		by(cust)
		e.Action = portal.ActionSignedOut
		about(portal.SubjectUser, cust.ID)
	case p < 530:
		e.Actor, e.Action = portal.ActorAnonymous, portal.ActionSignInFailed
		e.Details = map[string]any{"reason": "state does not match this browser's sign-in"}
	case p < 550:
		by(cust)
		e.Action = portal.ActionAccessRefused
		e.Details = map[string]any{"method": "GET", "path": "/staff/requests", "reason": "You are signed in, but this page is for 2i2c staff only."}
	case p < 650:
		by(cust)
		s.requests++
		e.Action = portal.ActionRequestCreated
		about(portal.SubjectRequest, s.requests)
		onCluster()
		e.Details = map[string]any{"cluster": cl.Name, "key_type": "age-x25519",
			"key_fingerprint": fmt.Sprintf("SHA256:%016x%016x", r.Uint64(), r.Uint64())}
	case p < 660:
		by(cust)
		e.Action = portal.ActionRequestCancelled
		about(portal.SubjectRequest, aRequest())
		onCluster()
	case p < 720:
		by(staff)
		e.Action = portal.ActionRequestApproved
		about(portal.SubjectRequest, aRequest())
		onCluster()
		e.Details = map[string]any{"note": "approved for the steering committee's dashboards"}
	case p < 780:
		by(staff)
		s.creds++
		e.Action = portal.ActionCredentialIssued
		about(portal.SubjectCredential, s.creds)
		onCluster()
		e.Details = map[string]any{"request_id": aRequest(), "username": fmt.Sprintf("%s-%s-%04d", cl.Name, strings.Split(cust.Email, "@")[0], r.IntN(10000)),
			"expires_at": e.At.AddDate(0, 0, 90).UTC().Format(time.RFC3339), "key_fingerprint": fmt.Sprintf("SHA256:%016x", r.Uint64())}
	case p < 800:
		by(staff)
		e.Action = portal.ActionRequestDenied
		about(portal.SubjectRequest, aRequest())
		onCluster()
		e.Details = map[string]any{"note": "Use the community's shared Grafana instead."}
	case p < 950:
		by(cust)
		e.Action = portal.ActionCredentialDownloaded
		about(portal.SubjectCredential, aCredential())
		onCluster()
		e.Details = map[string]any{"download": 1 + r.IntN(4)}
	case p < 970:
		by(staff)
		e.Action = portal.ActionCredentialRevoked
		about(portal.SubjectCredential, aCredential())
		onCluster()
		e.Details = map[string]any{"reason": "left the project", "by_owner": false}
	case p < 975:
		by(cust)
		e.Action = portal.ActionCredentialCompromised
		about(portal.SubjectCredential, aCredential())
		onCluster()
		e.Details = map[string]any{"reason": "pasted in a public notebook", "by_owner": true}
	case p < 990:
		e.Actor, e.Action = portal.ActorSystem, portal.ActionCredentialReminder
		about(portal.SubjectCredential, aCredential())
		onCluster()
		e.Details = map[string]any{"days_before": 14}
	case p < 995:
		by(staff)
		e.Action = portal.ActionClusterUpdated
		about(portal.SubjectCluster, cl.ID)
		onCluster()
		e.Details = map[string]any{"name": cl.Name, "credential_ttl_days": []any{90, 60}}
	default:
		by(staff)
		e.Action = portal.ActionClusterSyncTokenRotated
		about(portal.SubjectCluster, cl.ID)
		onCluster()
		e.Details = map[string]any{"cluster": cl.Name, "replaced_earlier_token": true}
	}
	return e
}
