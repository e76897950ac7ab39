package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// actor is who makes the request, for authorization and the audit log.
func (s *Server) actor(c echo.Context) workflow.Actor {
	// Both are kept in the audit log: cut to a sane size and to printable
	// text, whatever a client sends.
	return workflow.Actor{User: currentUser(c), IP: portal.Printable(c.RealIP(), 64),
		UserAgent: portal.Printable(c.Request().UserAgent(), 512)}
}

// idParam reads a numeric path parameter; anything else names nothing.
func idParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%s %q: %w", name, c.Param(name), portal.ErrNotFound)
	}
	return id, nil
}

// setFlash leaves a message for the next page the browser shows.
func (s *Server) setFlash(c echo.Context, kind, msg string) {
	s.sessions.Put(c.Request().Context(), sessFlashKind, kind)
	s.sessions.Put(c.Request().Context(), sessFlash, msg)
}

// dashboardPage is a customer's overview.
type dashboardPage struct {
	Requests    []*portal.Request
	Credentials []*portal.Credential
	Now         time.Time
}

func (s *Server) dashboard(c echo.Context) error {
	ctx, a := c.Request().Context(), s.actor(c)
	rs, err := s.wf.Requests(ctx, a, "")
	if err != nil {
		return err
	}
	cs, err := s.wf.Credentials(ctx, a)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "dashboard", page{Title: "Your credentials",
		Data: dashboardPage{Requests: rs, Credentials: cs, Now: time.Now()}})
}

// requestForm is the request page: the clusters, what was typed, and what
// to fix.
type requestForm struct {
	Clusters []*portal.Cluster
	Input    workflow.RequestInput
	// Error is what to fix. A Secret one means the key field held a private
	// key: it was cleared and is not shown back.
	Error *portal.Error
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
	}
	return s.renderRequestForm(c, http.StatusOK, in, nil)
}

func (s *Server) renderRequestForm(c echo.Context, status int, in workflow.RequestInput, pe *portal.Error) error {
	clusters, err := s.wf.OpenClusters(c.Request().Context())
	if err != nil {
		return err
	}
	if pe != nil && pe.Secret {
		in.PublicKey = "" // a private key is never shown back
	}
	return s.render(c, status, "request_new", page{Title: "Request access", Data: requestForm{Clusters: clusters, Input: in, Error: pe}})
}

func (s *Server) createRequest(c echo.Context) error {
	in := workflow.RequestInput{
		Cluster: c.FormValue("cluster"), PublicKey: c.FormValue("public_key"), Justification: c.FormValue("justification"),
	}
	r, err := s.wf.CreateRequest(c.Request().Context(), s.actor(c), in)
	if pe, status, ok := fixable(err); ok {
		return s.renderRequestForm(c, status, in, pe)
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "success", "Your request was sent. 2i2c staff will review it; this page shows its status.")
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/requests/%d", r.ID))
}

// requestPage shows one request and, once issued, its credential.
type requestPage struct {
	Request    *portal.Request
	Credential *portal.Credential
	Owner      bool
	Now        time.Time
}

func (s *Server) showRequest(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx, a := c.Request().Context(), s.actor(c)
	r, err := s.wf.Request(ctx, a, id)
	if err != nil {
		return err
	}
	p := requestPage{Request: r, Owner: a.User.ID == r.UserID, Now: time.Now()}
	if r.CredentialID != nil {
		if p.Credential, err = s.wf.Credential(ctx, a, *r.CredentialID); err != nil {
			return err
		}
	}
	return s.render(c, http.StatusOK, "request", page{Title: fmt.Sprintf("Request #%d", r.ID), Data: p})
}

func (s *Server) cancelRequest(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.wf.CancelRequest(c.Request().Context(), s.actor(c), id); err != nil {
		return err
	}
	s.setFlash(c, "info", "The request was cancelled.")
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/requests/%d", id))
}

// credentialPage shows one credential.
type credentialPage struct {
	Credential *portal.Credential
	Owner      bool
	State      portal.CredentialState
}

func (s *Server) showCredential(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	a := s.actor(c)
	cred, err := s.wf.Credential(c.Request().Context(), a, id)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "credential", page{Title: "Credential " + cred.Username, Data: credentialPage{
		Credential: cred, Owner: a.User.ID == cred.UserID, State: cred.State(time.Now()),
	}})
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
