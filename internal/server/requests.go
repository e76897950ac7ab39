package server

import (
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// apiRequestJSON is a request as the API shows it.
type apiRequestJSON struct {
	ID                 int64      `json:"id"`
	Status             string     `json:"status"`
	Cluster            string     `json:"cluster"`
	Requester          string     `json:"requester"`
	KeyType            string     `json:"key_type"`
	KeyFingerprint     string     `json:"key_fingerprint"`
	Justification      string     `json:"justification"`
	CreatedAt          time.Time  `json:"created_at"`
	DecidedAt          *time.Time `json:"decided_at,omitempty"`
	DecidedBy          string     `json:"decided_by,omitempty"`
	DecisionNote       string     `json:"decision_note,omitempty"`
	CredentialID       *int64     `json:"credential_id,omitempty"`
	RenewsCredentialID *int64     `json:"renews_credential_id,omitempty"`
	// ApprovedByRule names the policy rule that approved the request at
	// once; DecidedBy is then "policy".
	ApprovedByRule    string   `json:"approved_by_rule,omitempty"`
	Approvals         []string `json:"approvals"`
	ApprovalsRequired int      `json:"approvals_required"`
}

func requestJSON(r *portal.Request) apiRequestJSON {
	j := apiRequestJSON{
		ID: r.ID, Status: string(r.Status), Cluster: r.ClusterName, Requester: r.RequesterEmail,
		KeyType: string(r.KeyType), KeyFingerprint: r.KeyFingerprint, Justification: r.Justification,
		CreatedAt: r.CreatedAt, DecidedAt: r.DecidedAt, DecidedBy: r.DeciderEmail, DecisionNote: r.DecisionNote,
		CredentialID: r.CredentialID, RenewsCredentialID: r.RenewsCredentialID,
		ApprovedByRule: r.DecidedByRule, Approvals: nonNilStrings(r.Approvers), ApprovalsRequired: r.ApprovalsRequired,
	}
	if r.DecidedByRule != "" {
		j.DecidedBy = portal.ActorPolicy
	}
	return j
}

// nonNilStrings is list, or an empty list for nil, so JSON shows [].
func nonNilStrings(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// newRequestJSON is the body of a new request.
type newRequestJSON struct {
	Cluster       string `json:"cluster"`
	PublicKey     string `json:"public_key"`
	Justification string `json:"justification"`
}

func (s *Server) apiCreateRequest(call apiCall[newRequestJSON]) (any, error) {
	r, err := s.wf.CreateRequest(call.ctx, call.actor, workflow.RequestInput(call.in))
	if err == nil {
		created(call.c, fmt.Sprintf("/api/v1/requests/%d", r.ID))
	}
	return shown(requestJSON)(r, err)
}

func (s *Server) apiRequests(call apiCall[struct{}]) (any, error) {
	status := portal.RequestStatus(call.c.QueryParam("status"))
	switch status {
	case "", portal.StatusPending, portal.StatusApproved, portal.StatusDenied, portal.StatusCancelled, portal.StatusExpired:
	default:
		return nil, portal.Invalid("status", "status is one of pending, approved, denied, cancelled, expired")
	}
	q, err := call.pageQuery("cursor")
	if err != nil {
		return nil, err
	}
	return pageJSON("requests", requestJSON)(s.wf.Requests(call.ctx, call.actor, status, q))
}

func (s *Server) apiRequest(call apiCall[struct{}]) (any, error) {
	return shown(requestJSON)(s.wf.Request(call.ctx, call.actor, call.id))
}

type noteJSON struct {
	Note string `json:"note"`
}

// approveJSON is the body of an approval: a note, and the last day the
// credential may work (YYYY-MM-DD), or none for the cluster's default.
type approveJSON struct {
	Note      string `json:"note"`
	ExpiresOn string `json:"expires_on"`
}

func approveInput(note, expiresOn string) (workflow.ApproveInput, error) {
	day, err := portal.ParseDay("expires_on", expiresOn)
	return workflow.ApproveInput{Note: note, ExpiresOn: day}, err
}

func (s *Server) apiApprove(call apiCall[approveJSON]) (any, error) {
	in, err := approveInput(call.in.Note, call.in.ExpiresOn)
	if err != nil {
		return nil, err
	}
	ap, err := s.wf.Approve(call.ctx, call.actor, call.id, in)
	if err != nil {
		return nil, err
	}
	return requestJSON(ap.Request), nil
}

func (s *Server) apiDeny(call apiCall[noteJSON]) (any, error) {
	return shown(requestJSON)(s.wf.Deny(call.ctx, call.actor, call.id, call.in.Note))
}

func (s *Server) apiCancel(call apiCall[struct{}]) (any, error) {
	return shown(requestJSON)(s.wf.CancelRequest(call.ctx, call.actor, call.id))
}

// requestForm is the request page: the clusters, what was typed, and what
// to fix.
type requestForm struct {
	// Options and Policies are the clusters to choose from, as the menu's
	// options and as the list of their policies: clusterChoice rows,
	// rendered through the row cache (renderRow), each list whole.
	Options, Policies template.HTML
	Input             workflow.RequestInput
	// Renews is the credential a renewal with another key renews, or 0.
	Renews int64
	// Error is the first thing to fix. A Secret one means its field held a
	// private key or a password: it was cleared and is not shown back.
	Error *portal.Error
	// Problems is everything to fix, each shown beside its field and in the
	// summary at the top.
	Problems []*portal.Error
}

// clusterChoice is one cluster as the request form offers it, worked out
// here once so that its rows only print it: a method or a comparison in a
// template is a reflected call, and the form repeats each for every
// cluster.
type clusterChoice struct {
	Name, Title string
	Label       string // what the menu shows: the title and the Prometheus URL
	Summary     string // its policy, as Policy.Summary says it
	Note        string
	// AtOnce is set when the person's own request would be approved at
	// once by the cluster's policy.
	AtOnce bool
	// Selected is the cluster the form was sent with; Hidden is set on the
	// others when one was, so that only the chosen one's policy shows.
	Selected, Hidden bool
}

func newClusterChoices(clusters []*portal.Cluster, chosen string, u *portal.User) []clusterChoice {
	out := make([]clusterChoice, len(clusters))
	for i, c := range clusters {
		out[i] = clusterChoice{Name: c.Name, Title: c.Title(), Label: c.Title() + " (" + c.PrometheusURL + ")",
			Summary: c.Policy.Summary(), Note: c.Note, AtOnce: c.Policy.Matches(u),
			Selected: c.Name == chosen, Hidden: chosen != "" && c.Name != chosen}
	}
	return out
}

func (s *Server) newRequest(c echo.Context) error {
	in := workflow.RequestInput{Cluster: c.QueryParam("cluster")}
	if renew := c.QueryParam("renew"); renew != "" {
		// Renewing with another key starts from the credential's request.
		id, err := strconv.ParseInt(renew, 10, 64)
		if err != nil {
			return fmt.Errorf("renew %q: %w", renew, portal.ErrNotFound)
		}
		r, err := s.wf.RenewalDraft(c.Request().Context(), s.actor(c), id)
		if err != nil {
			return err
		}
		in = workflow.RequestInput{Cluster: r.ClusterName, Justification: r.Justification}
		return s.renderRequestForm(c, http.StatusOK, in, id, nil)
	}
	return s.renderRequestForm(c, http.StatusOK, in, 0, nil)
}

func (s *Server) renderRequestForm(c echo.Context, status int, in workflow.RequestInput, renews int64, refusal error) error {
	clusters, err := s.openClusters.get(c.Request().Context(), s.wf.OpenClusters)
	if err != nil {
		return err
	}
	f := requestForm{Input: in, Renews: renews}
	choices := newClusterChoices(clusters, in.Cluster, currentUser(c))
	if f.Options, err = renderRows(s, "request_new", "cluster-option", choices); err != nil {
		return err
	}
	if f.Policies, err = renderRows(s, "request_new", "cluster-policy", choices); err != nil {
		return err
	}
	for i, pe := range problems(refusal) {
		if i == 0 {
			f.Error = pe
		}
		forgetSecret(pe, map[string]*string{"public_key": &f.Input.PublicKey, "justification": &f.Input.Justification})
		if !pe.Secret { // a secret's warning stands on its own, above the summary
			f.Problems = append(f.Problems, pe)
		}
	}
	return s.render(c, status, "request_new", page{Title: "Request access", Data: f})
}

func (s *Server) createRequest(c echo.Context) error {
	in := workflow.RequestInput{
		Cluster: c.FormValue("cluster"), PublicKey: c.FormValue("public_key"), Justification: c.FormValue("justification"),
	}
	var (
		r      *portal.Request
		err    error
		renews int64
	)
	if v := c.FormValue("renews"); v != "" {
		if renews, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("renews %q: %w", v, portal.ErrNotFound)
		}
		r, err = s.wf.RenewWithKey(c.Request().Context(), s.actor(c), renews, in)
	} else {
		r, err = s.wf.CreateRequest(c.Request().Context(), s.actor(c), in)
	}
	if _, status, ok := fixable(err); ok {
		return s.renderRequestForm(c, status, in, renews, err)
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "success", "Your request was sent. 2i2c staff will review it; this page shows its status.")
	return c.Redirect(http.StatusSeeOther, requestURL(r.ID))
}

// requestPage shows one request and, once issued, its credential.
type requestPage struct {
	Request    *portal.Request
	Credential *portal.Credential
	Owner      bool
	Now        time.Time
}

func (s *Server) showRequest(cl call) (page, error) {
	r, err := s.wf.Request(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return page{}, err
	}
	p := requestPage{Request: r, Owner: cl.actor.User.ID == r.UserID, Now: time.Now()}
	if r.CredentialID != nil {
		p.Credential, err = s.wf.Credential(cl.ctx, cl.actor, *r.CredentialID)
	}
	return page{Title: fmt.Sprintf("Request #%d", r.ID), Data: p}, err
}

func (s *Server) cancelRequest(f call) (done, error) {
	if _, err := s.wf.CancelRequest(f.ctx, f.actor, f.id); err != nil {
		return done{}, err
	}
	return done{"info", "The request was cancelled.", requestURL(f.id)}, nil
}

func (s *Server) staffHome(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/staff/requests")
}

// queuePage is a page of the staff queue of pending requests; the staff
// summary counts them all (a bounded set: requests wait days, not years).
type queuePage struct {
	Requests    []queueItem
	Compromised int // credentials reported compromised in the last week
	Pager       pager
	Now         time.Time
}

// queueItem is a pending request with what its approve form offers: the
// lifetime its cluster grants by default and the longest it allows, as the
// last day the credential works, and whether the viewer approved it
// already.
type queueItem struct {
	*portal.Request
	DefaultLastDay, MaxLastDay string
	ApprovedByMe               bool
	// Renewed is the credential a renewal renews; SameKey says whether the
	// renewal is encrypted to the same key, which matters when that
	// credential was revoked or reported compromised.
	Renewed *portal.Credential
	SameKey bool
}

func (s *Server) queue(cl call) (page, error) {
	q, err := cl.pageQuery("cursor")
	if err != nil {
		return page{}, err
	}
	rs, err := s.wf.Queue(cl.ctx, cl.actor, q)
	if err != nil {
		return page{}, err
	}
	cs, err := s.wf.Clusters(cl.ctx, cl.actor)
	if err != nil {
		return page{}, err
	}
	n, err := s.wf.RecentCompromises(cl.ctx, cl.actor)
	if err != nil {
		return page{}, err
	}
	now := time.Now()
	byID := make(map[int64]*portal.Cluster, len(cs))
	for _, c := range cs {
		byID[c.ID] = c
	}
	items := make([]queueItem, len(rs.Items))
	for i, r := range rs.Items {
		items[i] = queueItem{Request: r, ApprovedByMe: slices.Contains(r.Approvers, cl.actor.User.Email)}
		if c := byID[r.ClusterID]; c != nil {
			items[i].DefaultLastDay = lastDay(now.Add(c.CredentialTTL()))
			items[i].MaxLastDay = lastDay(now.Add(c.MaxTTL()))
		}
		if r.RenewsCredentialID != nil {
			old, err := s.wf.Credential(cl.ctx, cl.actor, *r.RenewsCredentialID)
			if err != nil {
				return page{}, err
			}
			items[i].Renewed, items[i].SameKey = old, old.KeyFingerprint == r.KeyFingerprint
		}
	}
	// The queue warns of failing messages, so it counts them itself: here a
	// failure to count fails the page, where the navigation does without.
	sum, err := s.wf.StaffSummary(cl.ctx, cl.actor)
	return page{Title: "Pending requests", Staff: sum, Data: queuePage{Requests: items, Compromised: n, Now: now,
		Pager: newPager("Pages of the queue", "/staff/requests", cl.c.QueryParams(), "cursor", rs.Next, true)}}, err
}

// lastDay is the day, in UTC, of a credential expiring at t: the last day
// it works, as the approve form writes it.
func lastDay(t time.Time) string { return t.UTC().Format(portal.DateFormat) }

func (s *Server) approve(f call) (done, error) {
	in, err := approveInput(f.c.FormValue("note"), f.c.FormValue("expires_on"))
	if err != nil {
		return done{}, err
	}
	ap, err := s.wf.Approve(f.ctx, f.actor, f.id, in)
	if err != nil {
		return done{}, err
	}
	if cred := ap.Credential; cred != nil {
		return done{"success", fmt.Sprintf("Request #%d approved: credential %s issued for %s, valid until %s.",
			f.id, cred.Username, cred.ClusterName, cred.ExpiresAt.UTC().Format("2 Jan 2006")), queueURL(f.id)}, nil
	}
	r := ap.Request
	return done{"success", fmt.Sprintf("Your approval of request #%d is recorded: %d of %d approvals. Another member of staff must approve it too.",
		f.id, len(r.Approvers), r.ApprovalsRequired), queueURL(f.id)}, nil
}

func (s *Server) deny(f call) (done, error) {
	if _, err := s.wf.Deny(f.ctx, f.actor, f.id, f.c.FormValue("note")); err != nil {
		return done{}, err
	}
	return done{"info", fmt.Sprintf("Request #%d denied.", f.id), queueURL(f.id)}, nil
}
