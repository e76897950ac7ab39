package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// apiGuard protects the JSON API, which the browser session authenticates:
// a state-changing call must send application/json (a cross-site HTML form
// cannot) and no Origin but the portal's own. That is the API's CSRF defence.
func (s *Server) apiGuard(next echo.HandlerFunc) echo.HandlerFunc {
	origin := s.cfg.BaseURL.Scheme + "://" + s.cfg.BaseURL.Host
	return func(c echo.Context) error {
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
		if err != nil || mt != echo.MIMEApplicationJSON {
			return echo.NewHTTPError(http.StatusUnsupportedMediaType, "Send the body as JSON with Content-Type: application/json.")
		}
		if o := c.Request().Header.Get(echo.HeaderOrigin); o != "" && o != origin {
			return echo.NewHTTPError(http.StatusForbidden, "Cross-origin requests are refused.")
		}
		return next(c)
	}
}

// bindJSON decodes the body into v, refusing unknown fields so that a typo
// in a field name is an error rather than a silent default. An empty body
// counts as {}.
func bindJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return portal.Invalid("", "The body is not the JSON this call takes: %s.", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

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
}

func requestJSON(r *portal.Request) apiRequestJSON {
	return apiRequestJSON{
		ID: r.ID, Status: string(r.Status), Cluster: r.ClusterName, Requester: r.RequesterEmail,
		KeyType: string(r.KeyType), KeyFingerprint: r.KeyFingerprint, Justification: r.Justification,
		CreatedAt: r.CreatedAt, DecidedAt: r.DecidedAt, DecidedBy: r.DeciderEmail, DecisionNote: r.DecisionNote,
		CredentialID: r.CredentialID, RenewsCredentialID: r.RenewsCredentialID,
	}
}

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
		DownloadURL: fmt.Sprintf("/api/v1/credentials/%d/credentials.txt.age", c.ID),
	}
}

type apiClusterJSON struct {
	Name                   string `json:"name"`
	DisplayName            string `json:"display_name"`
	PrometheusURL          string `json:"prometheus_url"`
	CredentialLifetimeDays int    `json:"credential_ttl_days"`
	Note                   string `json:"note,omitempty"`
	Enabled                bool   `json:"enabled"`
}

func (s *Server) apiClusters(c echo.Context) error {
	cs, err := s.wf.Clusters(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	out := make([]apiClusterJSON, 0, len(cs))
	for _, cl := range cs {
		out = append(out, apiClusterJSON{Name: cl.Name, DisplayName: cl.Title(), PrometheusURL: cl.PrometheusURL,
			CredentialLifetimeDays: cl.CredentialTTLDays, Note: cl.Note, Enabled: cl.Enabled})
	}
	return c.JSON(http.StatusOK, map[string]any{"clusters": out})
}

func (s *Server) apiCreateRequest(c echo.Context) error {
	var in struct {
		Cluster       string `json:"cluster"`
		PublicKey     string `json:"public_key"`
		Justification string `json:"justification"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	r, err := s.wf.CreateRequest(c.Request().Context(), s.actor(c), workflow.RequestInput{
		Cluster: in.Cluster, PublicKey: in.PublicKey, Justification: in.Justification,
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("/api/v1/requests/%d", r.ID))
	return c.JSON(http.StatusCreated, requestJSON(r))
}

func (s *Server) apiRequests(c echo.Context) error {
	status := portal.RequestStatus(c.QueryParam("status"))
	switch status {
	case "", portal.StatusPending, portal.StatusApproved, portal.StatusDenied, portal.StatusCancelled:
	default:
		return portal.Invalid("status", "status is one of pending, approved, denied, cancelled")
	}
	rs, err := s.wf.Requests(c.Request().Context(), s.actor(c), status)
	if err != nil {
		return err
	}
	out := make([]apiRequestJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, requestJSON(r))
	}
	return c.JSON(http.StatusOK, map[string]any{"requests": out})
}

func (s *Server) apiRequest(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.wf.Request(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, requestJSON(r))
}

type noteJSON struct {
	Note string `json:"note"`
}

func (s *Server) apiApprove(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in noteJSON
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if _, err := s.wf.Approve(c.Request().Context(), s.actor(c), id, in.Note); err != nil {
		return err
	}
	return s.apiRequest(c)
}

func (s *Server) apiDeny(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in noteJSON
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	r, err := s.wf.Deny(c.Request().Context(), s.actor(c), id, in.Note)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, requestJSON(r))
}

func (s *Server) apiCancel(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.wf.CancelRequest(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, requestJSON(r))
}

func (s *Server) apiCredential(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cred, err := s.wf.Credential(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, credentialJSON(cred))
}
