package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// readsClusters reports whether s is the request form's read of the open
// clusters (store.EnabledClusters).
func readsClusters(s statement) bool {
	return strings.Contains(s.SQL, "FROM clusters WHERE enabled ORDER BY name")
}

// TestRequestFormHoldsItsClusters: the request form reads the open clusters
// once and then offers them from what the replica holds, running no
// statement at all for a held session; a change to a cluster is on the
// next form, whether this replica made it, another did, or someone at a
// psql prompt; and a replica that does not listen holds nothing.
func TestRequestFormHoldsItsClusters(t *testing.T) {
	t.Parallel()
	p, log := budgetPortal(t)
	leap := p.addCluster("leap")
	alice, sam := p.signedIn("alice@example.org"), p.signedIn("sam@2i2c.org")
	within(t, 2*time.Second, "the replica listens", func() bool {
		p.Server.openClusters.mu.Lock()
		defer p.Server.openClusters.mu.Unlock()
		return p.Server.openClusters.listening
	})

	first, _ := alice.view(log, "/requests/new", http.StatusOK)
	if !slices.ContainsFunc(first, readsClusters) {
		t.Fatalf("the first form did not read the clusters:%s", first)
	}
	var held statements
	for range 3 { // the session is held from the second or third view
		if held, _ = alice.view(log, "/requests/new", http.StatusOK); len(held) == 0 {
			break
		}
	}
	if len(held) != 0 {
		t.Errorf("a form with its session and clusters held ran %d statements, want none:%s", len(held), held)
	}

	// This replica's own change: staff rename the cluster.
	page := sam.get(fmt.Sprintf("/staff/clusters/%d/edit", leap.ID))
	form := url.Values{"csrf": {csrfToken(t, page.Body)}, "name": {"leap"}, "display_name": {"LEAP renamed here"},
		"prometheus_url": {leap.PrometheusURL}, "credential_ttl_days": {"90"}, "enabled": {"on"}}
	if r := sam.noFollow().post(fmt.Sprintf("/staff/clusters/%d", leap.ID), form); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("renaming the cluster: %d\n%s", r.StatusCode, r.Body)
	}
	if ran, body := alice.view(log, "/requests/new", http.StatusOK); !strings.Contains(body, "LEAP renamed here") {
		t.Errorf("the form right after this replica's rename does not show it:%s\n%s", ran, body)
	}

	// Another's change, as another replica's or a psql prompt's: told by
	// the notification of migration 0012.
	p.exec(`INSERT INTO clusters (name, display_name, prometheus_url) VALUES ('nasa-veda', 'NASA VEDA', 'https://prometheus.nasa-veda.2i2c.cloud')`)
	took := within(t, 2*time.Second, "the form offers the cluster added in SQL", func() bool {
		return strings.Contains(alice.get("/requests/new").Body, "NASA VEDA")
	})
	t.Logf("the form offered the cluster added in SQL %s after", took)
	p.exec(`UPDATE clusters SET enabled = false WHERE name = 'nasa-veda'`)
	within(t, 2*time.Second, "the form stops offering the cluster disabled in SQL", func() bool {
		return !strings.Contains(alice.get("/requests/new").Body, "NASA VEDA")
	})

	// Not listening, the replica holds no list: each form reads it.
	p.Server.openClusters.Listening(false)
	for range 2 {
		if ran, _ := alice.view(log, "/requests/new", http.StatusOK); !slices.ContainsFunc(ran, readsClusters) {
			t.Errorf("a replica that does not listen offered clusters it did not read:%s", ran)
		}
	}
}

// TestReplicaDropsItsClustersWhenAnotherChangesThem runs two replicas on one
// database: a cluster staff add on the first is offered by the second's
// form, which held the list before, within its notification's time.
func TestReplicaDropsItsClustersWhenAnotherChangesThem(t *testing.T) {
	t.Parallel()
	a := newPortal(t, portalOptions{})
	b := newPortal(t, portalOptions{store: a.Store})
	a.addCluster("leap")
	sam, alice := a.signedIn("sam@2i2c.org"), b.signedIn("alice@example.org")
	within(t, 2*time.Second, "replica B holds the clusters", func() bool {
		alice.get("/requests/new")
		b.Server.openClusters.mu.Lock()
		defer b.Server.openClusters.mu.Unlock()
		return b.Server.openClusters.open != nil
	})
	r := sam.apiPost("/api/v1/clusters", `{"name": "openscapes", "display_name": "Openscapes", "prometheus_url": "https://prometheus.openscapes.2i2c.cloud"}`)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("adding a cluster on replica A: %d\n%s", r.StatusCode, r.Body)
	}
	if body := sam.get("/requests/new").Body; !strings.Contains(body, "Openscapes") {
		t.Errorf("replica A's form right after its own change does not offer the cluster:\n%s", body)
	}
	took := within(t, 2*time.Second, "replica B's form offers the cluster added on replica A", func() bool {
		return strings.Contains(alice.get("/requests/new").Body, "Openscapes")
	})
	t.Logf("replica B offered the cluster %s after replica A added it", took)
}

// TestClusterCacheKeepsNoReadBegunBeforeADrop: a list read while the
// clusters changed may be the old one, so it is not kept; nor is one read
// while the replica does not listen; a failed read keeps nothing.
func TestClusterCacheKeepsNoReadBegunBeforeADrop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := new(clusterCache)
	reads := 0
	read := func(name string, during func()) func(context.Context) ([]*portal.Cluster, error) {
		return func(context.Context) ([]*portal.Cluster, error) {
			reads++
			if during != nil {
				during()
			}
			return []*portal.Cluster{{Name: name}}, nil
		}
	}
	held := func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.open == nil {
			return ""
		}
		return c.open[0].Name
	}

	if _, err := c.get(ctx, read("old", nil)); err != nil || held() != "" {
		t.Fatalf("not yet listening, the cache holds %q (err %v), want nothing", held(), err)
	}
	c.Listening(true)
	got, _ := c.get(ctx, read("old", c.drop)) // changed while it was read
	if got[0].Name != "old" || held() != "" {
		t.Errorf("a read across a drop returned %q and is held as %q, want returned and not held", got[0].Name, held())
	}
	if got, _ := c.get(ctx, read("new", nil)); got[0].Name != "new" || held() != "new" {
		t.Errorf("after the drop the cache returned %q and holds %q, want new", got[0].Name, held())
	}
	before := reads
	if got, _ := c.get(ctx, read("unread", nil)); got[0].Name != "new" || reads != before {
		t.Errorf("a held list was read again (%d reads) or changed (%q)", reads-before, got[0].Name)
	}
	c.Changed("")
	if held() != "" {
		t.Error("a notification left the list held")
	}
	if _, err := c.get(ctx, func(context.Context) ([]*portal.Cluster, error) { return nil, errors.New("gone") }); err == nil || held() != "" {
		t.Errorf("a failed read: err %v, held %q", err, held())
	}
	c.get(ctx, read("again", nil)) //nolint:errcheck
	c.Listening(false)
	if held() != "" {
		t.Error("losing the connection left the list held")
	}
}
