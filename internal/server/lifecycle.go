package server

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// revoke takes back a credential, by its owner or by staff.
func (s *Server) revoke(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cred, err := s.wf.Revoke(c.Request().Context(), s.actor(c), id, c.FormValue("reason"))
	if err != nil {
		return s.backWithReason(c, err, fmt.Sprintf("/credentials/%d", id))
	}
	s.setFlash(c, "success", fmt.Sprintf("Credential %s is revoked: %s's Prometheus refuses it within seconds.", cred.Username, cred.ClusterName))
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/credentials/%d", id))
}

// reportCompromised revokes the owner's credential at once and flags it.
func (s *Server) reportCompromised(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cred, err := s.wf.ReportCompromised(c.Request().Context(), s.actor(c), id, c.FormValue("details"))
	if err != nil {
		return s.backWithReason(c, err, fmt.Sprintf("/credentials/%d", id))
	}
	s.setFlash(c, "success", fmt.Sprintf("Thank you. Credential %s is revoked and 2i2c staff are told. "+
		"Renew it below to get a new one; if your key.txt may have leaked too, request one with a new key.", cred.Username))
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/credentials/%d", id))
}

// renew makes a new pending request from the credential's.
func (s *Server) renew(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.wf.Renew(c.Request().Context(), s.actor(c), id)
	if pe, _, ok := fixable(err); ok && linkURL(pe.Link) != "" { // a renewal pending already
		s.setFlash(c, "info", pe.Message)
		return c.Redirect(http.StatusSeeOther, linkURL(pe.Link))
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "success", "Renewal requested: the same cluster, key and justification. The current credential keeps working until it expires.")
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/requests/%d", r.ID))
}

// revocationsPage lists revoked credentials for staff.
type revocationsPage struct {
	Credentials []*portal.Credential
}

func (s *Server) revocations(c echo.Context) error {
	cs, err := s.wf.Revocations(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "staff_revocations", page{Title: "Revocations", Data: revocationsPage{Credentials: cs}})
}

// syncTokenPage shows a new sync token, once.
type syncTokenPage struct {
	Cluster *portal.Cluster
	Token   string
	URL     string
}

func (s *Server) rotateSyncToken(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cl, err := s.wf.Cluster(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	token, err := s.wf.RotateSyncToken(c.Request().Context(), s.actor(c), cl.Name)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "staff_sync_token", page{Title: "Sync token for " + cl.Name, Data: syncTokenPage{
		Cluster: cl, Token: token, URL: s.cfg.BaseURL.JoinPath("/api/v1/clusters", cl.Name, "web-config.yml").String(),
	}})
}

// API forms of the same actions.

func (s *Server) apiRevoke(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	cred, err := s.wf.Revoke(c.Request().Context(), s.actor(c), id, in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, credentialJSON(cred))
}

func (s *Server) apiReportCompromised(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in struct {
		Details string `json:"details"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	cred, err := s.wf.ReportCompromised(c.Request().Context(), s.actor(c), id, in.Details)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"credential": credentialJSON(cred),
		"renew_url":  fmt.Sprintf("/api/v1/credentials/%d/renew", id),
	})
}

func (s *Server) apiRenew(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.wf.Renew(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("/api/v1/requests/%d", r.ID))
	return c.JSON(http.StatusCreated, requestJSON(r))
}

func (s *Server) apiRevocations(c echo.Context) error {
	cs, err := s.wf.Revocations(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	out := make([]apiCredentialJSON, 0, len(cs))
	for _, cr := range cs {
		out = append(out, credentialJSON(cr))
	}
	return c.JSON(http.StatusOK, map[string]any{"revocations": out})
}
