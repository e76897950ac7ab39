package workflow_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// withPolicy gives cluster c policy p, as staff do on its page.
func (f *fixture) withPolicy(t *testing.T, c *portal.Cluster, p portal.Policy) *portal.Cluster {
	t.Helper()
	changed := *c
	changed.Policy = p
	if err := f.svc.UpdateCluster(t.Context(), as(f.staff), &changed); err != nil {
		t.Fatalf("policy of %s: %v", c.Name, err)
	}
	return &changed
}

// wantKind fails unless err is a portal.Error of kind whose message says
// each of says.
func wantKind(t *testing.T, err error, kind portal.Kind, says ...string) {
	t.Helper()
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Kind != kind {
		t.Fatalf("error %v, want one of kind %v", err, kind)
	}
	for _, s := range says {
		if !strings.Contains(pe.Message, s) {
			t.Errorf("message %q does not say %q", pe.Message, s)
		}
	}
}

func TestAutoApprovalIssuesInTheSameTransaction(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, workflow.Options{Notify: everyChannel})
	f := w.fixture(t)
	box := &outbox{st: w.st}
	f.withPolicy(t, f.open, portal.Policy{AutoApproveEmailDomains: []string{"example.org"}, AutoApproveGroups: []string{"earthscope-admins"}})
	box.since(t)

	tests := []struct {
		name            string
		user            *portal.User
		rule, matched   string
		approvedAtOnce  bool
		customerMessage string
	}{
		{name: "verified domain", user: f.customerA, rule: "email_domain", matched: "example.org", approvedAtOnce: true,
			customerMessage: "approved at once by the cluster's access policy (verified @example.org address)"},
		{name: "group", user: f.user(t, "gail", portal.RoleCustomer), rule: "group", matched: "earthscope-admins", approvedAtOnce: true,
			customerMessage: "(member of earthscope-admins)"},
		{name: "unverified address in the domain", user: f.user(t, "uma", portal.RoleCustomer)},
		{name: "another domain", user: f.user(t, "otto", portal.RoleCustomer)},
	}
	tests[1].user.Email, tests[1].user.Groups = "gail@elsewhere.net", []string{"other", "earthscope-admins"}
	tests[2].user.EmailVerified = false
	tests[3].user.Email = "otto@example.org.evil.net"
	for _, tt := range tests {
		if err := f.st.UpsertUser(t.Context(), tt.user); err != nil {
			t.Fatal(err)
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.request(t, tt.user)
			told := box.since(t)
			if !tt.approvedAtOnce {
				if r.Status != portal.StatusPending || r.CredentialID != nil {
					t.Fatalf("request is %s with credential %v, want pending for staff", r.Status, r.CredentialID)
				}
				if len(told) == 0 || told[0].Event != portal.ActionRequestCreated {
					t.Errorf("staff not asked to review: %v", recipients(told))
				}
				return
			}
			if r.Status != portal.StatusApproved || r.CredentialID == nil || r.DeciderEmail != "" {
				t.Fatalf("request is %s, credential %v, decided by %q; want approved and issued by the policy",
					r.Status, r.CredentialID, r.DeciderEmail)
			}
			if got, want := r.DecidedByRule, tt.rule+":"+tt.matched; got != want {
				t.Errorf("decided by rule %q, want %q", got, want)
			}
			cred, err := f.svc.Credential(t.Context(), as(tt.user), *r.CredentialID)
			if err != nil || !cred.ExpiresAt.After(time.Now().Add(89*24*time.Hour)) {
				t.Fatalf("credential %v (%v), want one for the cluster's 90 days", cred, err)
			}
			// The owner can download it at once.
			if _, _, err := f.svc.Download(t.Context(), as(tt.user), cred.ID); err != nil {
				t.Errorf("download: %v", err)
			}

			approved := f.auditEvents(t, portal.SubjectRequest, r.ID, portal.ActionRequestApproved)
			if len(approved) != 1 || approved[0].Actor != portal.ActorPolicy || approved[0].ActorID != nil ||
				approved[0].Details["rule"] != tt.rule || approved[0].Details["matched"] != tt.matched {
				t.Errorf("request.approved events %+v, want one by the policy naming rule %s matching %s", approved, tt.rule, tt.matched)
			}
			if issued := f.auditEvents(t, portal.SubjectCredential, cred.ID, portal.ActionCredentialIssued); len(issued) != 1 || issued[0].Actor != portal.ActorPolicy {
				t.Errorf("credential.issued events %+v, want one by the policy", issued)
			}

			// Staff hear of it after the fact, and are not asked to review;
			// the customer is told it is ready.
			var staff, customer []string
			for _, m := range told {
				switch m.Audience {
				case portal.AudienceStaff:
					staff = append(staff, string(m.Event))
					if m.Event == portal.ActionRequestAutoApproved && !strings.Contains(m.Text, tt.matched) {
						t.Errorf("staff message does not name the rule:\n%s", m.Text)
					}
				case portal.AudienceCustomer:
					customer = append(customer, string(m.Event))
					if !strings.Contains(m.Text, tt.customerMessage) {
						t.Errorf("customer message does not say %q:\n%s", tt.customerMessage, m.Text)
					}
				}
			}
			if want := "request.auto_approved request.auto_approved request.auto_approved"; strings.Join(staff, " ") != want {
				t.Errorf("staff told %v, want %s (two addresses and the webhook)", staff, want)
			}
			if strings.Join(customer, " ") != "request.approved" {
				t.Errorf("customer told %v, want request.approved", customer)
			}
		})
	}
}

func TestDisabledClusterTakesNoRequestWhateverItsPolicy(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	f.withPolicy(t, f.closed, portal.Policy{AutoApproveEmailDomains: []string{"example.org"}})
	in := f.requestInput()
	in.Cluster = f.closed.Name
	_, err := f.svc.CreateRequest(t.Context(), as(f.customerA), in)
	wantKind(t, err, portal.KindInvalid, "not taking new requests")
	if rs, _ := f.svc.Requests(t.Context(), as(f.customerA), "", firstPage); len(rs.Items) != 0 {
		t.Errorf("%d requests stored, want none", len(rs.Items))
	}
}

func TestTwoPersonApproval(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, workflow.Options{Notify: everyChannel})
	f := w.fixture(t)
	box := &outbox{st: w.st}
	f.withPolicy(t, f.open, portal.Policy{ApprovalsRequired: 2})
	r := f.request(t, f.customerA)
	box.since(t)

	first, err := f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{Note: "Fine by me."})
	if err != nil {
		t.Fatal(err)
	}
	if first.Credential != nil || first.Request.Status != portal.StatusPending {
		t.Fatalf("after one approval: request %s, credential %v; want still pending", first.Request.Status, first.Credential)
	}
	if got := fmt.Sprintf("%d of %d: %s", len(first.Request.Approvers), first.Request.ApprovalsRequired,
		strings.Join(first.Request.Approvers, ", ")); got != "1 of 2: "+f.staff.Email {
		t.Errorf("approvals shown as %q", got)
	}
	recorded := f.auditEvents(t, portal.SubjectRequest, r.ID, portal.ActionApprovalRecorded)
	if len(recorded) != 1 || recorded[0].Actor != f.staff.Email || recorded[0].Details["note"] != "Fine by me." {
		t.Errorf("approval_recorded events %+v, want one by %s with the note", recorded, f.staff.Email)
	}
	if told := box.since(t); len(told) != 3 || told[0].Event != portal.ActionApprovalRecorded ||
		!strings.Contains(told[0].Text, "it has 1") {
		t.Errorf("staff told %v, want three messages asking for another approval", recipients(told))
	}

	// The same person again: a conflict that says what to do, and nothing
	// changes.
	_, err = f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{})
	wantKind(t, err, portal.KindConflict, "You approved this request already", "another must")
	if got := f.requestStatus(t, r.ID); got != portal.StatusPending {
		t.Errorf("after a repeated approval the request is %s", got)
	}

	second := f.user(t, "kai", portal.RoleStaff)
	done, err := f.svc.Approve(t.Context(), as(second), r.ID, workflow.ApproveInput{Note: "Agreed."})
	if err != nil {
		t.Fatal(err)
	}
	if done.Credential == nil || done.Request.Status != portal.StatusApproved || done.Request.DeciderEmail != second.Email {
		t.Fatalf("after the second approval: request %s by %q, credential %v", done.Request.Status, done.Request.DeciderEmail, done.Credential)
	}
	// In the order they approved: the first read by its key, the second the
	// decider's own.
	if got := strings.Join(done.Request.Approvers, ", "); got != f.staff.Email+", "+second.Email {
		t.Errorf("approvers of the decided request %q, want %s then %s", got, f.staff.Email, second.Email)
	}
	approved := f.auditEvents(t, portal.SubjectRequest, r.ID, portal.ActionRequestApproved)
	if len(approved) != 1 || approved[0].Actor != second.Email ||
		fmt.Sprint(approved[0].Details["approver_ids"]) != fmt.Sprintf("[%d %d]", f.staff.ID, second.ID) {
		t.Errorf("request.approved events %+v, want one by %s naming both approvers", approved, second.Email)
	}
	if told := box.since(t); len(told) != 1 || told[0].Event != portal.ActionRequestApproved || told[0].Audience != portal.AudienceCustomer {
		t.Errorf("told %v, want the customer, once", recipients(told))
	}
}

func TestDenialByAnyoneEndsATwoPersonRequest(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	f.withPolicy(t, f.open, portal.Policy{ApprovalsRequired: 2})
	r := f.request(t, f.customerA)
	if _, err := f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	// Even the first approver may change their mind.
	if _, err := f.svc.Deny(t.Context(), as(f.staff), r.ID, "On reflection, no."); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Approve(t.Context(), as(f.user(t, "kai", portal.RoleStaff)), r.ID, workflow.ApproveInput{})
	wantKind(t, err, portal.KindConflict, "already denied")
}

func TestConcurrentSecondApprovalsIssueOneCredential(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	f.withPolicy(t, f.open, portal.Policy{ApprovalsRequired: 2})
	r := f.request(t, f.customerA)
	if _, err := f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	staff := make([]*portal.User, n)
	for i := range staff {
		staff[i] = f.user(t, fmt.Sprintf("staff%d", i), portal.RoleStaff)
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		issued    []int64
		conflicts int
	)
	for _, s := range staff {
		wg.Go(func() {
			ap, err := f.svc.Approve(t.Context(), as(s), r.ID, workflow.ApproveInput{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && ap.Credential != nil:
				issued = append(issued, ap.Credential.ID)
			case errors.Is(err, portal.ErrConflict):
				conflicts++
			default:
				t.Errorf("approval by %s: %v (credential %v)", s.Email, err, ap)
			}
		})
	}
	wg.Wait()
	if len(issued) != 1 || conflicts != n-1 {
		t.Fatalf("%d credentials issued and %d conflicts, want 1 and %d", len(issued), conflicts, n-1)
	}
	var count int
	if err := f.st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM credentials WHERE request_id = $1`, r.ID).Scan(&count); err != nil || count != 1 {
		t.Errorf("%d credentials stored for the request (%v), want 1", count, err)
	}
}

func TestPolicyInForceAtTheDecidingApprovalDecides(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	c := f.withPolicy(t, f.open, portal.Policy{ApprovalsRequired: 2})
	r := f.request(t, f.customerA)
	if _, err := f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	// Back to one approval: the request is still pending, and the next
	// approval by someone else issues it.
	f.withPolicy(t, c, portal.DefaultPolicy())
	if got := f.requestStatus(t, r.ID); got != portal.StatusPending {
		t.Fatalf("a policy change decided the request: %s", got)
	}
	done, err := f.svc.Approve(t.Context(), as(f.user(t, "kai", portal.RoleStaff)), r.ID, workflow.ApproveInput{})
	if err != nil || done.Credential == nil {
		t.Fatalf("approval under the new policy: %v, credential %v", err, done)
	}

	// A request made under one approval needs two once the policy says so.
	f.withPolicy(t, c, portal.Policy{ApprovalsRequired: 2})
	r2 := f.request(t, f.customerB)
	ap, err := f.svc.Approve(t.Context(), as(f.staff), r2.ID, workflow.ApproveInput{})
	if err != nil || ap.Credential != nil {
		t.Fatalf("first approval under the stricter policy: %v, credential %v; want none yet", err, ap)
	}
}

func TestStaffChooseAShorterLifetime(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	f.withPolicy(t, f.open, portal.Policy{MaxTTLDays: 180})
	day := func(days int) time.Time {
		return time.Now().UTC().AddDate(0, 0, days).Truncate(24 * time.Hour)
	}

	tests := []struct {
		name       string
		expiresOn  time.Time
		wantErr    string // in the message; "" when allowed
		wantExpiry time.Time
	}{
		{name: "beyond the longest lifetime", expiresOn: day(200), wantErr: "at most 180 days"},
		{name: "a day that has passed", expiresOn: day(-1), wantErr: "today or later"},
		{name: "shorter", expiresOn: day(30), wantExpiry: day(31)},
		{name: "the longest", expiresOn: day(180), wantExpiry: time.Now().Add(180 * 24 * time.Hour)},
		{name: "the default", wantExpiry: time.Now().Add(90 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.request(t, f.user(t, "c"+strings.ReplaceAll(tt.name, " ", ""), portal.RoleCustomer))
			ap, err := f.svc.Approve(t.Context(), as(f.staff), r.ID, workflow.ApproveInput{ExpiresOn: tt.expiresOn})
			if tt.wantErr != "" {
				wantKind(t, err, portal.KindInvalid, tt.wantErr)
				if got := f.requestStatus(t, r.ID); got != portal.StatusPending {
					t.Errorf("a refused approval left the request %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ap.Credential.ExpiresAt; got.Sub(tt.wantExpiry).Abs() > time.Minute {
				t.Errorf("expires %s, want %s", got.UTC(), tt.wantExpiry.UTC())
			}
		})
	}
}

func TestRenewalFollowsThePolicyAndKeepsTheOldCredential(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	f.withPolicy(t, f.open, portal.Policy{AutoApproveEmailDomains: []string{"example.org"}})
	r := f.request(t, f.customerA)
	old, err := f.svc.Credential(t.Context(), as(f.customerA), *r.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	renewal, err := f.svc.Renew(t.Context(), as(f.customerA), old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if renewal.Status != portal.StatusApproved || renewal.CredentialID == nil || *renewal.CredentialID == old.ID {
		t.Fatalf("renewal is %s with credential %v, want issued at once", renewal.Status, renewal.CredentialID)
	}
	after, err := f.svc.Credential(t.Context(), as(f.customerA), old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ExpiresAt.Equal(old.ExpiresAt) || after.RevokedAt != nil {
		t.Errorf("the old credential now expires %s (revoked %v), want %s as before", after.ExpiresAt, after.RevokedAt, old.ExpiresAt)
	}
}

func TestPolicyChangesAreAuditedWithBeforeAndAfter(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	f.withPolicy(t, f.open, portal.Policy{ApprovalsRequired: 2, AutoApproveGroups: []string{"earthscope-admins"}, MaxTTLDays: 120})
	es := f.auditEvents(t, portal.SubjectCluster, f.open.ID, portal.ActionClusterUpdated)
	if len(es) != 1 {
		t.Fatalf("%d cluster.updated events, want 1", len(es))
	}
	for key, want := range map[string]string{
		"policy.approvals_required":  "[1 2]",
		"policy.auto_approve.groups": "[[] [earthscope-admins]]",
		"policy.max_ttl_days":        "[0 120]",
	} {
		if got := fmt.Sprint(es[0].Details[key]); got != want {
			t.Errorf("%s: %s, want %s", key, got, want)
		}
	}
	if _, ok := es[0].Details["policy.request_ttl_days"]; ok {
		t.Errorf("an unchanged field is listed: %v", es[0].Details)
	}
}

func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	tests := []struct {
		name   string
		policy portal.Policy
		says   string
	}{
		{"free mail", portal.Policy{AutoApproveEmailDomains: []string{"gmail.com"}}, "free mail provider"},
		{"public suffix", portal.Policy{AutoApproveEmailDomains: []string{"ac.uk"}}, "public suffix"},
		{"not a domain", portal.Policy{AutoApproveEmailDomains: []string{"earth scope.org"}}, "not an email domain"},
		{"three approvals", portal.Policy{ApprovalsRequired: 3}, "1 or 2"},
		{"longest below the default", portal.Policy{MaxTTLDays: 30}, "between the credential lifetime (90 days)"},
		{"request lifetime", portal.Policy{RequestTTLDays: 400}, "between 1 and 365"},
		{"group with a space", portal.Policy{AutoApproveGroups: []string{"earthscope admins"}}, "no spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *f.open
			c.Policy = tt.policy
			wantKind(t, f.svc.UpdateCluster(t.Context(), as(f.staff), &c), portal.KindInvalid, tt.says)
			stored, err := f.svc.Cluster(t.Context(), as(f.staff), f.open.ID)
			if err != nil || stored.Policy.AutoApproval() || stored.Policy.Required() != 1 {
				t.Errorf("a refused policy was stored: %+v (%v)", stored.Policy, err)
			}
		})
	}
}

func TestEachClusterSetsHowLongRequestsWait(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	w := newWorldWith(t, workflow.Options{Now: func() time.Time { return clock() }})
	f := w.fixture(t)
	quick := f.withPolicy(t, f.cluster(t, "quick", true), portal.Policy{RequestTTLDays: 2})
	slow := f.request(t, f.customerA) // the open cluster: the portal's default, 14 days
	in := f.requestInput()
	in.Cluster = quick.Name
	fast, err := f.svc.CreateRequest(t.Context(), as(f.customerA), in)
	if err != nil {
		t.Fatal(err)
	}
	clock = func() time.Time { return now.Add(3 * 24 * time.Hour) }
	if n, err := f.svc.ExpireRequests(t.Context()); err != nil || n != 1 {
		t.Fatalf("expired %d (%v), want 1", n, err)
	}
	if got := f.requestStatus(t, fast.ID); got != portal.StatusExpired {
		t.Errorf("request on the 2-day cluster is %s after 3 days", got)
	}
	if got := f.requestStatus(t, slow.ID); got != portal.StatusPending {
		t.Errorf("request on the default cluster is %s after 3 days", got)
	}
	es := f.auditEvents(t, portal.SubjectRequest, fast.ID, portal.ActionRequestExpired)
	if len(es) != 1 || es[0].Details["waited_longer_than"] != (48*time.Hour).String() {
		t.Errorf("request.expired events %+v, want one saying 48h", es)
	}
}
