package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// apiCredentialJSON is a credential as the API shows it: never a password or
// its hash.
type apiCredentialJSON struct {
	ID             int64      `json:"id"`
	RequestID      int64      `json:"request_id"`
	Cluster        string     `json:"cluster"`
	PrometheusURL  string     `json:"prometheus_url"`
	Username       string     `json:"username"`
	Owner          string     `json:"owner"`
	State          string     `json:"state"`
	KeyFingerprint string     `json:"key_fingerprint"`
	IssuedAt       time.Time  `json:"issued_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	RevokeReason   string     `json:"revoke_reason,omitempty"`
	Compromised    bool       `json:"compromised"`
	DownloadCount  int        `json:"download_count"`
	LastDownloadAt *time.Time `json:"last_download_at,omitempty"`
	DownloadURL    string     `json:"download_url"`
}

func credentialJSON(c *portal.Credential) apiCredentialJSON {
	return apiCredentialJSON{
		ID: c.ID, RequestID: c.RequestID, Cluster: c.ClusterName, PrometheusURL: c.PrometheusURL,
		Username: c.Username, Owner: c.OwnerEmail, State: string(c.State(time.Now())), KeyFingerprint: c.KeyFingerprint,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, RevokedAt: c.RevokedAt, RevokeReason: c.RevokeReason,
		Compromised: c.Compromised, DownloadCount: c.DownloadCount, LastDownloadAt: c.LastDownloadAt,
		DownloadURL: "/api/v1/credentials/" + strconv.FormatInt(c.ID, 10) + "/credentials.txt.age",
	}
}

func (s *Server) apiCredential(call apiCall[struct{}]) (any, error) {
	return shown(credentialJSON)(s.wf.Credential(call.ctx, call.actor, call.id))
}

// credentialPage shows one credential.
type credentialPage struct {
	Credential *portal.Credential
	// Request is the request it was issued for: its key type says which
	// private key file decrypts it.
	Request *portal.Request
	KeyType portal.KeyType
	Owner   bool
	State   portal.CredentialState
}

func (s *Server) credentialPage(cl call) (credentialPage, error) {
	cred, err := s.wf.Credential(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return credentialPage{}, err
	}
	r, err := s.wf.Request(cl.ctx, cl.actor, cred.RequestID)
	if err != nil {
		return credentialPage{}, err
	}
	return credentialPage{Credential: cred, Request: r, KeyType: r.KeyType,
		Owner: cl.actor.User.ID == cred.UserID, State: cred.State(time.Now())}, nil
}

func (s *Server) showCredential(cl call) (page, error) {
	p, err := s.credentialPage(cl)
	if err != nil {
		return page{}, err
	}
	return page{Title: "Credential " + p.Credential.Username, Data: p}, nil
}

// download sends credentials.txt.age as the binary age file the customer
// documentation's command opens.
func (s *Server) download(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	data, _, err := s.wf.Download(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Disposition", `attachment; filename="credentials.txt.age"`)
	h.Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "application/octet-stream", data)
}

// revoke takes back a credential, by its owner or by staff.
func (s *Server) revoke(f call) (done, error) {
	cred, err := s.wf.Revoke(f.ctx, f.actor, f.id, f.c.FormValue("reason"))
	if err != nil {
		return done{}, err
	}
	return done{"success", fmt.Sprintf("Credential %s is revoked: %s's Prometheus refuses it within seconds.",
		cred.Username, cred.ClusterName), credentialURL(f.id)}, nil
}

// reportCompromised revokes the owner's credential at once and flags it.
func (s *Server) reportCompromised(f call) (done, error) {
	rep, err := s.wf.ReportCompromised(f.ctx, f.actor, f.id, f.c.FormValue("details"))
	if err != nil {
		return done{}, err
	}
	withheld := ""
	if rep.DetailsWithheld {
		withheld = " What you wrote held a password or a private key, so it was not kept: never paste them anywhere."
	}
	return done{"success", fmt.Sprintf("Thank you. Credential %s is revoked and 2i2c staff are told.%s "+
		"Renew it below to get a new one; if your key.txt may have leaked too, request one with a new key.", rep.Credential.Username, withheld),
		credentialURL(f.id)}, nil
}

// renew makes a new pending request from the credential's.
func (s *Server) renew(f call) (done, error) {
	r, err := s.wf.Renew(f.ctx, f.actor, f.id)
	if pe, _, ok := fixable(err); ok && linkURL(pe.Link) != "" { // a renewal pending already
		return done{"info", pe.Message, linkURL(pe.Link)}, nil
	}
	if err != nil {
		return done{}, err
	}
	return done{"success", "Renewal requested: the same cluster, key and justification. " +
		"The current credential keeps working until it expires.", requestURL(r.ID)}, nil
}

// revocationsPage is a page of the revoked credentials for staff, with
// their number (capped: portal.CountCap).
type revocationsPage struct {
	Credentials []*portal.Credential
	Total       portal.Count
	Pager       pager
}

func (s *Server) revocations(cl call) (page, error) {
	q, err := cl.pageQuery("cursor")
	if err != nil {
		return page{}, err
	}
	cs, err := s.wf.Revocations(cl.ctx, cl.actor, q)
	if err != nil {
		return page{}, err
	}
	n, err := s.wf.RevocationCount(cl.ctx, cl.actor)
	return page{Title: "Revocations", Data: revocationsPage{Credentials: cs.Items, Total: n,
		Pager: newPager("Pages of revocations", "/staff/revocations", cl.c.QueryParams(), "cursor", cs.Next, false)}}, err
}

func (s *Server) apiRevoke(call apiCall[struct {
	Reason string `json:"reason"`
}]) (any, error) {
	return shown(credentialJSON)(s.wf.Revoke(call.ctx, call.actor, call.id, call.in.Reason))
}

func (s *Server) apiReportCompromised(call apiCall[struct {
	Details string `json:"details"`
}]) (any, error) {
	rep, err := s.wf.ReportCompromised(call.ctx, call.actor, call.id, call.in.Details)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"credential":       credentialJSON(rep.Credential),
		"renew_url":        fmt.Sprintf("/api/v1/credentials/%d/renew", call.id),
		"details_withheld": rep.DetailsWithheld,
	}, nil
}

func (s *Server) apiRenew(call apiCall[struct{}]) (any, error) {
	r, err := s.wf.Renew(call.ctx, call.actor, call.id)
	if err == nil {
		created(call.c, fmt.Sprintf("/api/v1/requests/%d", r.ID))
	}
	return shown(requestJSON)(r, err)
}

func (s *Server) apiRevocations(call apiCall[struct{}]) (any, error) {
	q, err := call.pageQuery("cursor")
	if err != nil {
		return nil, err
	}
	return pageJSON("revocations", credentialJSON)(s.wf.Revocations(call.ctx, call.actor, q))
}
