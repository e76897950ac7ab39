package workflow

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/issue"
	"github.com/2i2c-org/credential-portal/internal/pgtest"
	"github.com/2i2c-org/credential-portal/internal/portal"
)

// TestApprovalDrawsAgainWhenTheUsernameIsTaken: the events and the message
// of an approval are written before its credential, naming its username, so
// a username that turns out to be taken cannot be swapped for another in the
// same transaction. The approval goes again with new secrets: the
// credential, its event and its message then all name the new username, and
// nothing of the refused attempt remains. Should every draw clash, the
// approval fails and the request stays pending.
func TestApprovalDrawsAgainWhenTheUsernameIsTaken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newApprovals(t)
	st, svc, cluster, sam, rcpt := f.st, f.svc, f.cluster, f.sam, f.rcpt
	request := func(name string) int64 { return f.request(t, name) }
	issued, err := issue.NewSecrets(issue.DefaultBcryptCost).Issue(cluster, rcpt, time.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	const taken = "c-taken00000"
	drawing := func(usernames ...string) (func() minter, *int) {
		n := new(int)
		return func() minter {
			u := usernames[min(*n, len(usernames)-1)]
			*n++
			return premadeSecrets{issued: issued, username: u}
		}, n
	}

	first, _ := drawing(taken)
	if _, err := svc.approveDrawing(ctx, sam, request("alice"), ApproveInput{}, first); err != nil {
		t.Fatal(err)
	}

	id := request("bob")
	draw, draws := drawing(taken, "c-fresh00000")
	ap, err := svc.approveDrawing(ctx, sam, id, ApproveInput{}, draw)
	if err != nil {
		t.Fatalf("approval whose first username was taken: %v", err)
	}
	if *draws != 2 || ap.Credential.Username != "c-fresh00000" || ap.Request.Status != portal.StatusApproved ||
		ap.Request.CredentialID == nil || *ap.Request.CredentialID != ap.Credential.ID {
		t.Errorf("after %d draws: credential %s (%d), request %s with credential %v; want the second draw's username on the request's credential",
			*draws, ap.Credential.Username, ap.Credential.ID, ap.Request.Status, ap.Request.CredentialID)
	}
	var events, named, messages int
	err = st.Pool().QueryRow(ctx, `
		SELECT (SELECT count(*) FROM audit_events WHERE action = 'credential.issued' AND details->>'request_id' = $1),
		       (SELECT count(*) FROM audit_events WHERE action = 'credential.issued' AND details->>'request_id' = $1
		          AND details->>'username' = 'c-fresh00000' AND subject_id = $2),
		       (SELECT count(*) FROM messages WHERE event = 'request.approved' AND recipient = 'bob@example.org')`,
		strconv.FormatInt(id, 10), ap.Credential.ID).Scan(&events, &named, &messages)
	if err != nil {
		t.Fatal(err)
	}
	if events != 1 || named != 1 || messages != 1 {
		t.Errorf("%d credential.issued events (%d naming the credential and its username), %d messages; want 1, 1 and 1",
			events, named, messages)
	}

	stuck := request("carol")
	always, tries := drawing(taken)
	if _, err := svc.approveDrawing(ctx, sam, stuck, ApproveInput{}, always); !errors.Is(err, portal.ErrConflict) || *tries != 3 {
		t.Errorf("approval whose every username is taken: %v after %d draws; want a conflict after 3", err, *tries)
	}
	r, err := st.RequestByID(ctx, stuck)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != portal.StatusPending {
		t.Errorf("request is %s after its approval failed; want pending", r.Status)
	}
}

// TestApprovalWritesWhileTheHashRuns: only the last of an approval's round
// trips waits for the password's hash. While the hash runs, one trip locks
// the request, adds the approval, decides the request and draws the
// credential's ID, and the next writes the events and the customer's
// message; once it is done, one trip stores the credential and commits.
func TestApprovalWritesWhileTheHashRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	trips := &pgtest.Trips{}
	f := newTracedApprovals(t, trips)
	id := f.request(t, "alice")
	issued, err := issue.NewSecrets(issue.DefaultBcryptCost).Issue(f.cluster, f.rcpt, time.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	hashed := make(chan struct{})
	m := slowSecrets{premadeSecrets{issued: issued, username: "c-slow0000000"}, hashed}

	before := trips.N()
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.approve(ctx, f.sam, id, ApproveInput{}, m)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for trips.N()-before < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	whileHashing := trips.N() - before
	time.Sleep(20 * time.Millisecond) // nothing more goes before the hash
	if n := trips.N() - before; n != whileHashing {
		t.Errorf("%d round trips while the hash ran, then %d more before it was done", whileHashing, n-whileHashing)
	}
	close(hashed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if whileHashing != 2 || trips.N()-before != 3 {
		t.Errorf("%d round trips while the hash ran and %d in all; want 2 (the lock and decision, then the events and message) and 3",
			whileHashing, trips.N()-before)
	}
	var events, messages, creds int
	err = f.st.Pool().QueryRow(ctx, `
		SELECT (SELECT count(*) FROM audit_events WHERE subject_id IN ($1, (SELECT id FROM credentials WHERE request_id = $1))
		          AND action IN ('request.approved', 'credential.issued')),
		       (SELECT count(*) FROM messages WHERE event = 'request.approved'),
		       (SELECT count(*) FROM credentials WHERE request_id = $1 AND username = 'c-slow0000000')`, id).
		Scan(&events, &messages, &creds)
	if err != nil {
		t.Fatal(err)
	}
	if events != 2 || messages != 1 || creds != 1 {
		t.Errorf("after the approval: %d events, %d messages, %d credentials; want 2, 1 and 1", events, messages, creds)
	}
}

// slowSecrets are premade secrets whose hash is done only when hashed is
// closed.
type slowSecrets struct {
	premadeSecrets
	hashed <-chan struct{}
}

func (s slowSecrets) Issue(c *portal.Cluster, r *issue.Recipient, now, expiresAt time.Time) (*issue.Issued, error) {
	<-s.hashed
	return s.premadeSecrets.Issue(c, r, now, expiresAt)
}
