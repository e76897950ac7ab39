package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/webconfig"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

type apiClusterJSON struct {
	Name                   string              `json:"name"`
	DisplayName            string              `json:"display_name"`
	PrometheusURL          string              `json:"prometheus_url"`
	CredentialLifetimeDays int                 `json:"credential_ttl_days"`
	Note                   string              `json:"note,omitempty"`
	Enabled                bool                `json:"enabled"`
	Policy                 workflow.PolicySpec `json:"policy"`
	// PolicySummary says in a sentence what happens to a request.
	PolicySummary string `json:"policy_summary"`
}

func clusterJSON(cl *portal.Cluster) apiClusterJSON {
	return apiClusterJSON{Name: cl.Name, DisplayName: cl.Title(), PrometheusURL: cl.PrometheusURL,
		CredentialLifetimeDays: cl.CredentialTTLDays, Note: cl.Note, Enabled: cl.Enabled,
		Policy: workflow.SpecOf(cl.Policy), PolicySummary: cl.Policy.Summary()}
}

func (s *Server) apiClusters(call apiCall[struct{}]) (any, error) {
	return shownAll("clusters", clusterJSON)(s.wf.Clusters(call.ctx, call.actor))
}

func (s *Server) apiCluster(call apiCall[struct{}]) (any, error) {
	return shown(clusterJSON)(s.wf.ClusterNamed(call.ctx, call.actor, call.c.Param("name")))
}

// clusterInJSON is the body that creates or replaces a cluster: absent
// fields take their defaults (a 90-day lifetime, enabled, the default
// policy), and unknown ones, in the policy too, are refused.
type clusterInJSON struct {
	Name              string               `json:"name"`
	DisplayName       string               `json:"display_name"`
	PrometheusURL     string               `json:"prometheus_url"`
	CredentialTTLDays int                  `json:"credential_ttl_days"`
	Note              string               `json:"note"`
	Enabled           *bool                `json:"enabled"`
	Policy            *workflow.PolicySpec `json:"policy"`
}

func (in clusterInJSON) cluster() *portal.Cluster {
	c := &portal.Cluster{Name: in.Name, DisplayName: in.DisplayName, PrometheusURL: in.PrometheusURL,
		CredentialTTLDays: in.CredentialTTLDays, Note: in.Note, Enabled: in.Enabled == nil || *in.Enabled,
		Policy: in.Policy.Policy()}
	if c.CredentialTTLDays == 0 {
		c.CredentialTTLDays = portal.DefaultCredentialTTLDays
	}
	return c
}

func (s *Server) apiCreateCluster(call apiCall[clusterInJSON]) (any, error) {
	c := call.in.cluster()
	if err := s.wf.CreateCluster(call.ctx, call.actor, c); err != nil {
		return nil, err
	}
	created(call.c, "/api/v1/clusters/"+c.Name)
	return shown(clusterJSON)(s.wf.ClusterNamed(call.ctx, call.actor, c.Name))
}

// apiUpdateCluster replaces cluster :name's editable fields with the body's.
func (s *Server) apiUpdateCluster(call apiCall[clusterInJSON]) (any, error) {
	old, err := s.wf.ClusterNamed(call.ctx, call.actor, call.c.Param("name"))
	if err != nil {
		return nil, err
	}
	if call.in.Name != "" && call.in.Name != old.Name {
		return nil, portal.Invalid("name", "A cluster's name cannot change; leave it out or write %s.", old.Name)
	}
	c := call.in.cluster()
	c.ID = old.ID
	if err := s.wf.UpdateCluster(call.ctx, call.actor, c); err != nil {
		return nil, err
	}
	return shown(clusterJSON)(s.wf.ClusterNamed(call.ctx, call.actor, old.Name))
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
	// DefaultRequestTTLDays is the portal's request lifetime, for a policy
	// that sets none.
	DefaultRequestTTLDays int
}

func (s *Server) clusterForm(c *portal.Cluster, isNew bool, pe *portal.Error) clusterForm {
	return clusterForm{Cluster: c, New: isNew, Error: pe, DefaultRequestTTLDays: int(s.wf.DefaultRequestTTL().Hours() / 24)}
}

func (s *Server) newCluster(call) (page, error) {
	return page{Title: "Add a cluster", Data: s.clusterForm(&portal.Cluster{
		CredentialTTLDays: portal.DefaultCredentialTTLDays, Enabled: true, Policy: portal.DefaultPolicy()}, true, nil)}, nil
}

func (s *Server) editCluster(cl call) (page, error) {
	c, err := s.wf.Cluster(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return page{}, err
	}
	return page{Title: "Edit " + c.Name, Data: s.clusterForm(c, false, nil)}, nil
}

// clusterFromForm reads the cluster form. An unreadable number is kept as
// -1 (0 for the lifetime), which validation refuses with its own message;
// an empty optional one is 0, its default.
func clusterFromForm(c echo.Context) *portal.Cluster {
	number := func(field string) int {
		v := strings.TrimSpace(c.FormValue(field))
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return -1
		}
		return n
	}
	ttl, _ := strconv.Atoi(strings.TrimSpace(c.FormValue("credential_ttl_days")))
	return &portal.Cluster{
		Name: c.FormValue("name"), DisplayName: c.FormValue("display_name"), PrometheusURL: c.FormValue("prometheus_url"),
		CredentialTTLDays: ttl, Note: c.FormValue("note"), Enabled: c.FormValue("enabled") == "on",
		Policy: portal.Policy{
			AutoApproveEmailDomains: lines(c.FormValue("auto_approve_email_domains")),
			AutoApproveGroups:       lines(c.FormValue("auto_approve_groups")),
			ApprovalsRequired:       number("approvals_required"),
			MaxTTLDays:              number("max_ttl_days"),
			RequestTTLDays:          number("request_ttl_days"),
		},
	}
}

// lines splits a list typed one per line (or separated by commas).
func lines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' })
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
		if pe.Secret { // the policy's lists are shown back whole: not one holding a secret
			switch pe.Field {
			case "auto_approve_email_domains":
				cl.Policy.AutoApproveEmailDomains = nil
			case "auto_approve_groups":
				cl.Policy.AutoApproveGroups = nil
			}
		}
		return s.render(c, status, "staff_cluster", page{Title: "Cluster", Data: s.clusterForm(cl, isNew, pe)})
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "success", fmt.Sprintf("Cluster %s saved.", cl.Name))
	return c.Redirect(http.StatusSeeOther, "/staff/clusters")
}
