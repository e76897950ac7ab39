package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// queuePage is the staff queue of pending requests.
type queuePage struct {
	Requests    []*portal.Request
	Compromised int // credentials reported compromised in the last week
	Now         time.Time
}

func (s *Server) queue(c echo.Context) error {
	ctx, a := c.Request().Context(), s.actor(c)
	rs, err := s.wf.Queue(ctx, a)
	if err != nil {
		return err
	}
	n, err := s.wf.RecentCompromises(ctx, a)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "staff_queue", page{Title: "Pending requests",
		Data: queuePage{Requests: rs, Compromised: n, Now: time.Now()}})
}

func (s *Server) approve(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cred, err := s.wf.Approve(c.Request().Context(), s.actor(c), id, c.FormValue("note"))
	if err != nil {
		return s.backWithReason(c, err, "/staff/requests")
	}
	s.setFlash(c, "success", fmt.Sprintf("Request #%d approved: credential %s issued for %s, valid until %s.",
		id, cred.Username, cred.ClusterName, cred.ExpiresAt.UTC().Format("2 Jan 2006")))
	return c.Redirect(http.StatusSeeOther, "/staff/requests")
}

func (s *Server) deny(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.wf.Deny(c.Request().Context(), s.actor(c), id, c.FormValue("note")); err != nil {
		return s.backWithReason(c, err, "/staff/requests")
	}
	s.setFlash(c, "info", fmt.Sprintf("Request #%d denied.", id))
	return c.Redirect(http.StatusSeeOther, "/staff/requests")
}

// backWithReason returns the browser to the page at to with the reason of
// err, when the reason is the person's to act on: a field to fix, a state
// that changed meanwhile. Any other error goes to the error handler.
func (s *Server) backWithReason(c echo.Context, err error, to string) error {
	pe, _, ok := fixable(err)
	if !ok {
		return err
	}
	s.setFlash(c, "error", pe.Message)
	return c.Redirect(http.StatusSeeOther, to)
}

// clustersPage lists clusters for staff.
type clustersPage struct {
	Clusters []*portal.Cluster
}

func (s *Server) clusters(c echo.Context) error {
	cs, err := s.wf.Clusters(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "staff_clusters", page{Title: "Clusters", Data: clustersPage{Clusters: cs}})
}

// clusterForm adds or edits a cluster.
type clusterForm struct {
	Cluster *portal.Cluster
	New     bool
	Error   *portal.Error // what to fix, or the clash with an existing cluster
}

func (s *Server) newCluster(c echo.Context) error {
	return s.render(c, http.StatusOK, "staff_cluster", page{Title: "Add a cluster", Data: clusterForm{
		Cluster: &portal.Cluster{CredentialTTLDays: portal.DefaultCredentialTTLDays, Enabled: true}, New: true,
	}})
}

func (s *Server) editCluster(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cl, err := s.wf.Cluster(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "staff_cluster", page{Title: "Edit " + cl.Name, Data: clusterForm{Cluster: cl}})
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
		return s.render(c, status, "staff_cluster", page{Title: "Cluster", Data: clusterForm{Cluster: cl, New: isNew, Error: pe}})
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "success", fmt.Sprintf("Cluster %s saved.", cl.Name))
	return c.Redirect(http.StatusSeeOther, "/staff/clusters")
}
