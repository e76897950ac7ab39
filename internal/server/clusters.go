package server

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
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
	q, err := call.pageQuery("cursor")
	if err != nil {
		return nil, err
	}
	return pageJSON("clusters", clusterJSON)(s.wf.ClustersPage(call.ctx, call.actor, q))
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
	err := s.wf.CreateCluster(call.ctx, call.actor, c)
	s.openClusters.drop()
	if err != nil {
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
	err = s.wf.UpdateCluster(call.ctx, call.actor, c)
	s.openClusters.drop()
	if err != nil {
		return nil, err
	}
	return shown(clusterJSON)(s.wf.ClusterNamed(call.ctx, call.actor, old.Name))
}

// syncTokenPage shows a new sync token, once. Token is "" when it was
// shown already: a reload rotates nothing and shows nothing.
type syncTokenPage struct {
	Cluster  *portal.Cluster
	Token    string
	URL      string
	Settings string // the agent's settings, to paste beside the token
}

// A new sync token crosses the redirect from the rotation to the page that
// shows it (post, redirect, get: a reload must not rotate again) sealed in
// a short-lived cookie, under a key held in the session. The database, which
// keeps only the token's hash, never holds it, and the cookie alone opens
// nothing.
const (
	sessSyncTokenKey = "sync_token_key"
	syncTokenCookie  = "portal_new_sync_token"
)

// agentTokenFile is where the agent's values for the Prometheus chart mount
// the token's secret.
const agentTokenFile = "/etc/portal-agent/token"

func syncTokenPath(clusterID int64) string {
	return fmt.Sprintf("/staff/clusters/%d/sync-token", clusterID)
}

// rotateSyncToken makes cluster :id's new sync token and sends the browser
// to the page that shows it.
func (s *Server) rotateSyncToken(c echo.Context) error {
	cl, err := s.newCall(c)
	if err != nil {
		return err
	}
	cluster, err := s.wf.Cluster(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return err
	}
	token, err := s.wf.RotateSyncToken(cl.ctx, cl.actor, cluster.Name)
	if err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("sync token key: %w", err)
	}
	sealed, err := sealSyncToken(key, cluster.ID, token)
	if err != nil {
		return err
	}
	s.sessions.Put(cl.ctx, sessSyncTokenKey, base64.RawURLEncoding.EncodeToString(key))
	c.SetCookie(&http.Cookie{Name: syncTokenCookie, Value: sealed, Path: syncTokenPath(cluster.ID) + "/new",
		MaxAge: 600, HttpOnly: true, Secure: secureCookies(s.cfg.BaseURL), SameSite: http.SameSiteStrictMode})
	return c.Redirect(http.StatusSeeOther, syncTokenPath(cluster.ID)+"/new")
}

// newSyncToken shows the token rotateSyncToken sealed, once: the cookie
// and the key are gone after.
func (s *Server) newSyncToken(cl call) (page, error) {
	cluster, err := s.wf.Cluster(cl.ctx, cl.actor, cl.id)
	if err != nil {
		return page{}, err
	}
	p := syncTokenPage{Cluster: cluster, URL: s.cfg.BaseURL.JoinPath(webconfig.PublicationPath(cluster.Name)).String()}
	key, _ := base64.RawURLEncoding.DecodeString(s.sessions.PopString(cl.ctx, sessSyncTokenKey))
	if ck, err := cl.c.Cookie(syncTokenCookie); err == nil && len(key) == 32 {
		p.Token = openSyncToken(key, cluster.ID, ck.Value)
	}
	cl.c.SetCookie(&http.Cookie{Name: syncTokenCookie, Path: syncTokenPath(cluster.ID) + "/new", MaxAge: -1,
		HttpOnly: true, Secure: secureCookies(s.cfg.BaseURL), SameSite: http.SameSiteStrictMode})
	if p.Token != "" {
		p.Settings = fmt.Sprintf("PORTAL_AGENT_PORTAL_URL=%s\nPORTAL_AGENT_CLUSTER=%s\nPORTAL_AGENT_TOKEN_FILE=%s",
			s.cfg.BaseURL, cluster.Name, agentTokenFile)
	}
	return page{Title: "Sync token for " + cluster.Name, Data: p}, nil
}

func sealSyncToken(key []byte, clusterID int64, token string) (string, error) {
	aead, err := syncTokenAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sync token nonce: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, []byte(token), []byte(strconv.FormatInt(clusterID, 10)))
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// openSyncToken is the token sealed for cluster clusterID, or "" when the
// value is not one (tampered, for another cluster, another session's).
func openSyncToken(key []byte, clusterID int64, value string) string {
	aead, err := syncTokenAEAD(key)
	if err != nil {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < aead.NonceSize() {
		return ""
	}
	token, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(strconv.FormatInt(clusterID, 10)))
	if err != nil {
		return ""
	}
	return string(token)
}

func syncTokenAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sync token cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

func (s *Server) apiRotateSyncToken(call apiCall[struct{}]) (any, error) {
	token, err := s.wf.RotateSyncToken(call.ctx, call.actor, call.c.Param("name"))
	if err != nil {
		return nil, err
	}
	call.c.Response().Header().Set("Cache-Control", "no-store")
	return map[string]string{"token": token}, nil
}

// clustersPage is a page of the clusters, by name, for staff.
type clustersPage struct {
	Clusters []*portal.Cluster
	Pager    pager
}

func (s *Server) clusters(cl call) (page, error) {
	q, err := cl.pageQuery("cursor")
	if err != nil {
		return page{}, err
	}
	cs, err := s.wf.ClustersPage(cl.ctx, cl.actor, q)
	if err != nil {
		return page{}, err
	}
	return page{Title: "Clusters", Data: clustersPage{Clusters: cs.Items,
		Pager: newPager("Pages of clusters", "/staff/clusters", cl.c.QueryParams(), "cursor", cs.Next, true)}}, nil
}

// clusterForm adds or edits a cluster.
type clusterForm struct {
	Cluster *portal.Cluster
	New     bool
	Error   *portal.Error // the first thing to fix, or the clash with an existing cluster
	// Problems is everything to fix, each beside its field.
	Problems []*portal.Error
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
	s.openClusters.drop() // this replica's change is seen at once, not when notified
	if first, status, ok := fixable(err); ok {
		all := problems(err)
		for _, pe := range all {
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
		}
		f := s.clusterForm(cl, isNew, first)
		f.Problems = all
		return s.render(c, status, "staff_cluster", page{Title: "Cluster", Data: f})
	}
	if err != nil {
		return err
	}
	s.setFlash(c, "success", fmt.Sprintf("Cluster %s saved.", cl.Name))
	return c.Redirect(http.StatusSeeOther, "/staff/clusters")
}
