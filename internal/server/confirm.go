package server

import (
	"fmt"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// What cannot be undone (revoking, reporting compromised, denying,
// cancelling, rotating a sync token) and approving, which issues a
// credential, each go through a page that says what will happen, with the
// form that does it: the button on the object's own page is a link to it.
// It is plain HTML, so it works without JavaScript.

// confirmPage is the Data of the confirm template.
type confirmPage struct {
	Heading      string
	Consequences []string
	// Action is where the form posts; Kind names the fields it carries
	// (revoke, compromised, deny, approve, or none).
	Action, Kind string
	Button       string
	Danger       bool
	// Back is where "don't" leads: the object's own page.
	Back, BackLabel string
	// DefaultLastDay and MaxLastDay bound an approval's lifetime.
	DefaultLastDay, MaxLastDay string
}

// stillActive refuses, in plain words, to confirm an action on a credential
// that no longer works.
func stillActive(p credentialPage) error {
	switch p.State {
	case portal.CredentialRevoked:
		return &portal.Error{Kind: portal.KindConflict, Message: "This credential was revoked already. Nothing more to do.",
			Link: &portal.Link{Subject: portal.SubjectCredential, ID: p.Credential.ID}}
	case portal.CredentialExpired:
		return &portal.Error{Kind: portal.KindConflict, Message: "This credential has expired already. Nothing more to do.",
			Link: &portal.Link{Subject: portal.SubjectCredential, ID: p.Credential.ID}}
	}
	return nil
}

func (s *Server) confirmRevoke(cl call) (page, error) {
	p, err := s.credentialPage(cl)
	if err != nil {
		return page{}, err
	}
	if err := stillActive(p); err != nil {
		return page{}, err
	}
	c := p.Credential
	heading := fmt.Sprintf("Revoke credential %s?", c.Username)
	return page{Title: heading, Data: confirmPage{
		Heading: heading,
		Consequences: []string{
			fmt.Sprintf("%s's Prometheus refuses %s within seconds, wherever it is used (Grafana, scripts).", c.ClusterName, c.Username),
			"This cannot be undone: a new credential needs a new request.",
			fmt.Sprintf("The owner, %s, is told, and the revocation is kept in the audit log with your reason.", c.OwnerEmail),
		},
		Action: credentialURL(c.ID) + "/revoke", Kind: "revoke", Button: "Revoke now", Danger: true,
		Back: credentialURL(c.ID), BackLabel: "Keep it and go back",
	}}, nil
}

func (s *Server) confirmReportCompromised(cl call) (page, error) {
	p, err := s.credentialPage(cl)
	if err != nil {
		return page{}, err
	}
	if !p.Owner { // only the owner reports; staff revoke
		return page{}, fmt.Errorf("credential %d: %w", cl.id, portal.ErrNotFound)
	}
	if err := stillActive(p); err != nil {
		return page{}, err
	}
	c := p.Credential
	heading := fmt.Sprintf("Report %s compromised?", c.Username)
	return page{Title: heading, Data: confirmPage{
		Heading: heading,
		Consequences: []string{
			fmt.Sprintf("The credential is revoked at once: %s's Prometheus refuses it within seconds.", c.ClusterName),
			"2i2c staff are told, and it is marked compromised for good.",
			"This cannot be undone. Renew afterwards to get a new one; if your key.txt may have leaked too, renew with another key.",
		},
		Action: credentialURL(c.ID) + "/report-compromised", Kind: "compromised", Button: "Report compromised and revoke", Danger: true,
		Back: credentialURL(c.ID), BackLabel: "Go back",
	}}, nil
}

// pendingRequest is the request r, read for a confirmation by the
// workflow's rule for the action it confirms, refused in plain words once
// decided.
func pendingRequest(r *portal.Request, err error) (*portal.Request, error) {
	if err != nil {
		return nil, err
	}
	if r.Status != portal.StatusPending {
		return nil, &portal.Error{Kind: portal.KindConflict, Message: fmt.Sprintf("Request #%d is %s already. Nothing more to do.", r.ID, r.Status),
			Link: &portal.Link{Subject: portal.SubjectRequest, ID: r.ID}}
	}
	return r, nil
}

func (s *Server) confirmCancel(cl call) (page, error) {
	r, err := pendingRequest(s.wf.RequestToCancel(cl.ctx, cl.actor, cl.id))
	if err != nil {
		return page{}, err
	}
	heading := fmt.Sprintf("Cancel request #%d for %s?", r.ID, r.ClusterName)
	return page{Title: heading, Data: confirmPage{
		Heading: heading,
		Consequences: []string{
			"2i2c staff will not review it, and no credential is issued for it.",
			"This cannot be undone, but you can make a new request at any time.",
		},
		Action: requestURL(r.ID) + "/cancel", Button: "Cancel the request", Danger: true,
		Back: requestURL(r.ID), BackLabel: "Keep it waiting",
	}}, nil
}

func (s *Server) confirmDeny(cl call) (page, error) {
	r, err := pendingRequest(s.wf.RequestToDecide(cl.ctx, cl.actor, cl.id, "deny"))
	if err != nil {
		return page{}, err
	}
	heading := fmt.Sprintf("Deny request #%d from %s?", r.ID, r.RequesterEmail)
	return page{Title: heading, Data: confirmPage{
		Heading: heading,
		Consequences: []string{
			fmt.Sprintf("No credential is issued for %s, and %s is told, with your reason.", r.ClusterName, r.RequesterEmail),
			"This cannot be undone: they would have to make a new request.",
		},
		Action: fmt.Sprintf("/staff/requests/%d/deny", r.ID), Kind: "deny", Button: "Deny the request", Danger: true,
		Back: queueURL(r.ID) + fmt.Sprintf("#request-%d", r.ID), BackLabel: "Back to the queue",
	}}, nil
}

func (s *Server) confirmApprove(cl call) (page, error) {
	r, err := pendingRequest(s.wf.RequestToDecide(cl.ctx, cl.actor, cl.id, "approve"))
	if err != nil {
		return page{}, err
	}
	c, err := s.wf.Cluster(cl.ctx, cl.actor, r.ClusterID)
	if err != nil {
		return page{}, err
	}
	now := time.Now()
	heading := fmt.Sprintf("Approve request #%d from %s?", r.ID, r.RequesterEmail)
	what := fmt.Sprintf("A credential for %s is issued at once, encrypted to their %s key, and %s is told.", c.Name, r.KeyType.Label(), r.RequesterEmail)
	button := "Approve and issue"
	if r.ApprovalsRequired > 1 && len(r.Approvers) < r.ApprovalsRequired-1 {
		what = fmt.Sprintf("Your approval is recorded (%d of %d); another member of staff must approve it before a credential is issued.",
			len(r.Approvers)+1, r.ApprovalsRequired)
		button = fmt.Sprintf("Approve (%d of %d)", len(r.Approvers)+1, r.ApprovalsRequired)
	}
	return page{Title: heading, Data: confirmPage{
		Heading:      heading,
		Consequences: []string{what, "Its username and password work on " + c.PrometheusURL + " until the last day you choose."},
		Action:       fmt.Sprintf("/staff/requests/%d/approve", r.ID), Kind: "approve", Button: button,
		Back: queueURL(r.ID) + fmt.Sprintf("#request-%d", r.ID), BackLabel: "Back to the queue",
		DefaultLastDay: lastDay(now.Add(c.CredentialTTL())), MaxLastDay: lastDay(now.Add(c.MaxTTL())),
	}}, nil
}

func (s *Server) confirmRotate(cl call) (page, error) {
	c, err := s.wf.Cluster(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return page{}, err
	}
	heading := fmt.Sprintf("Create a sync token for %s?", c.Name)
	what := []string{"The new token is shown once, on the next page: copy it into the Kubernetes secret the cluster's portal agent reads."}
	button := "Create the token"
	if c.SyncTokenCreatedAt != nil {
		heading = fmt.Sprintf("Rotate the sync token of %s?", c.Name)
		what = []string{
			fmt.Sprintf("The current token stops working at once: %s's portal agent can no longer fetch credentials until it is given the new one.", c.Name),
			"Until then its Prometheus keeps the last credentials the agent wrote: new credentials and revocations do not reach it.",
			"The new token is shown once, on the next page.",
		}
		button = "Rotate the token"
	}
	return page{Title: heading, Data: confirmPage{
		Heading: heading, Consequences: what,
		Action: fmt.Sprintf("/staff/clusters/%d/sync-token", c.ID), Button: button, Danger: c.SyncTokenCreatedAt != nil,
		Back: fmt.Sprintf("/staff/clusters/%d/edit", c.ID), BackLabel: "Back to the cluster",
	}}, nil
}
