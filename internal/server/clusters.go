package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
)

type apiClusterJSON struct {
	Name                   string `json:"name"`
	DisplayName            string `json:"display_name"`
	PrometheusURL          string `json:"prometheus_url"`
	CredentialLifetimeDays int    `json:"credential_ttl_days"`
	Note                   string `json:"note,omitempty"`
	Enabled                bool   `json:"enabled"`
}

func clusterJSON(cl *portal.Cluster) apiClusterJSON {
	return apiClusterJSON{Name: cl.Name, DisplayName: cl.Title(), PrometheusURL: cl.PrometheusURL,
		CredentialLifetimeDays: cl.CredentialTTLDays, Note: cl.Note, Enabled: cl.Enabled}
}

func (s *Server) apiClusters(call apiCall[struct{}]) (any, error) {
	return shownAll("clusters", clusterJSON)(s.wf.Clusters(call.ctx, call.actor))
}

// syncTokenPage shows a new sync token, once.
type syncTokenPage struct {
	Cluster *portal.Cluster
	Token   string
	URL     string
}

func (s *Server) rotateSyncToken(cl call) (page, error) {
	c, err := s.wf.Cluster(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return page{}, err
	}
	token, err := s.wf.RotateSyncToken(cl.ctx, cl.actor, c.Name)
	return page{Title: "Sync token for " + c.Name, Data: syncTokenPage{
		Cluster: c, Token: token, URL: s.cfg.BaseURL.JoinPath(webconfig.PublicationPath(c.Name)).String(),
	}}, err
}

func (s *Server) apiRotateSyncToken(call apiCall[struct{}]) (any, error) {
	token, err := s.wf.RotateSyncToken(call.ctx, call.actor, call.c.Param("name"))
	if err != nil {
		return nil, err
	}
	call.c.Response().Header().Set("Cache-Control", "no-store")
	return map[string]string{"token": token}, nil
}

// clustersPage lists clusters for staff.
type clustersPage struct {
	Clusters []*portal.Cluster
}

func (s *Server) clusters(cl call) (page, error) {
	cs, err := s.wf.Clusters(cl.ctx, cl.actor)
	return page{Title: "Clusters", Data: clustersPage{Clusters: cs}}, err
}

// clusterForm adds or edits a cluster.
type clusterForm struct {
	Cluster *portal.Cluster
	New     bool
	Error   *portal.Error // what to fix, or the clash with an existing cluster
}

func (s *Server) newCluster(call) (page, error) {
	return page{Title: "Add a cluster", Data: clusterForm{
		Cluster: &portal.Cluster{CredentialTTLDays: portal.DefaultCredentialTTLDays, Enabled: true}, New: true,
	}}, nil
}

func (s *Server) editCluster(cl call) (page, error) {
	c, err := s.wf.Cluster(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return page{}, err
	}
	return page{Title: "Edit " + c.Name, Data: clusterForm{Cluster: c}}, nil
}

// clusterFromForm reads the cluster form. An unreadable lifetime is kept as
// 0, which validation refuses with its own message.
func clusterFromForm(c echo.Context) *portal.Cluster {
	ttl, _ := strconv.Atoi(strings.TrimSpace(c.FormValue("credential_ttl_days")))
	return &portal.Cluster{
		Name: c.FormValue("name"), DisplayName: c.FormValue("display_name"), PrometheusURL: c.FormValue("prometheus_url"),
		CredentialTTLDays: ttl, Note: c.FormValue("note"), Enabled: c.FormValue("enabled") == "on",
	}
}

func (s *Server) saveCluster(c echo.Context) error {
	cl := clusterFromForm(c)
	isNew := c.Param("id") == ""
	var err error
	if isNew {
		err = s.wf.CreateCluster(c.Request().Context(), s.actor(c), cl)
	} else {
		if cl.ID, err = idParam(c, "id"); err != nil {
			return err
		}
		err = s.wf.UpdateCluster(c.Request().Context(), s.actor(c), cl)
	}
	if pe, status, ok := fixable(err); ok {
		forgetSecret(pe, map[string]*string{"name": &cl.Name, "display_name": &cl.DisplayName,
			"prometheus_url": &cl.PrometheusURL, "note": &cl.Note})
		return s.render(c, status, "staff_cluster", page{Title: "Cluster", Data: clusterForm{Cluster: cl, New: isNew, Error: pe}})
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "success", fmt.Sprintf("Cluster %s saved.", cl.Name))
	return c.Redirect(http.StatusSeeOther, "/staff/clusters")
}
