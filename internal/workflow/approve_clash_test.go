package workflow

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/issue"
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
