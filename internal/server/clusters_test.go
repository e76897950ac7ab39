package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestStaffManageClusters(t *testing.T) {
	t.Parallel()
	p := newPortal(t, portalOptions{})
	sam, bob := p.browser(), p.browser()
	sam.signIn("sam@2i2c.org")
	bob.signIn("bob@example.org")

	form := sam.get("/staff/clusters/new")
	bad := url.Values{"csrf": {csrfToken(t, form.Body)}, "name": {"Bad_Name"}, "prometheus_url": {"https://prometheus.x.2i2c.cloud"},
		"credential_ttl_days": {"90"}, "enabled": {"on"}}
	r := sam.post("/staff/clusters", bad)
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "DNS label") || !strings.Contains(r.Body, "prometheus.x.2i2c.cloud") {
		t.Errorf("bad cluster name: %d\n%s", r.StatusCode, r.Body)
	}
	good := url.Values{"csrf": {csrfToken(t, form.Body)}, "name": {"awi-ciroh"}, "display_name": {"AWI-CIROH"},
		"prometheus_url": {"https://prometheus.ciroh.awi.2i2c.cloud"}, "credential_ttl_days": {"30"}, "enabled": {"on"},
		"note": {"Covers every hub."}}
	r = sam.post("/staff/clusters", good)
	if r.Request.URL.Path != "/staff/clusters" || !strings.Contains(r.Body, "prometheus.ciroh.awi.2i2c.cloud") {
		t.Fatalf("add cluster: %d at %s\n%s", r.StatusCode, r.Request.URL, r.Body)
	}
	if r := sam.post("/staff/clusters", good); r.StatusCode != http.StatusConflict {
		t.Errorf("adding the same name twice: %d, want 409", r.StatusCode)
	}
	// A customer's attempt is refused and changes nothing.
	good.Set("csrf", csrfToken(t, bob.get("/dashboard").Body))
	good.Set("name", "sneaky")
	if r := bob.post("/staff/clusters", good); r.StatusCode != http.StatusForbidden {
		t.Errorf("customer adding a cluster: %d, want 403", r.StatusCode)
	}
	// Disable it: no new requests.
	id := p.count(`SELECT id FROM clusters WHERE name = 'awi-ciroh'`)
	edit := sam.get(fmt.Sprintf("/staff/clusters/%d/edit", id))
	sam.post(fmt.Sprintf("/staff/clusters/%d", id), url.Values{"csrf": {csrfToken(t, edit.Body)}, "display_name": {"AWI-CIROH"},
		"prometheus_url": {"https://prometheus.ciroh.awi.2i2c.cloud"}, "credential_ttl_days": {"30"}})
	if n := p.count(`SELECT count(*) FROM clusters WHERE enabled`); n != 0 {
		t.Errorf("the cluster is still enabled")
	}
	if n := p.count(`SELECT count(*) FROM clusters`); n != 1 {
		t.Errorf("%d clusters, want 1", n)
	}
	if n := p.count(`SELECT count(*) FROM audit_events WHERE action IN ('cluster.created', 'cluster.updated')`); n != 2 {
		t.Errorf("%d cluster audit events, want 2", n)
	}
}
