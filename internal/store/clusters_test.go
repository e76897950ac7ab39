package store

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

func TestClusters(t *testing.T) {
	ctx, s := start(t)

	c := demoCluster("awi-ciroh")
	if err := s.CreateCluster(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || c.CreatedAt.IsZero() {
		t.Errorf("CreateCluster did not fill ID and times: %+v", c)
	}
	err := s.CreateCluster(ctx, demoCluster("awi-ciroh"))
	if !errors.Is(err, portal.ErrConflict) {
		t.Errorf("duplicate name: %v, want ErrConflict", err)
	}
	if _, err := s.ClusterByName(ctx, "nope"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("ClusterByName(nope): %v, want ErrNotFound", err)
	}
	if _, err := s.ClusterByID(ctx, 424242); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("ClusterByID(424242): %v, want ErrNotFound", err)
	}
	got, err := s.ClusterByName(ctx, "awi-ciroh")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("ClusterByName (-created +read):\n%s", diff)
	}

	got.Enabled = false
	got.Note = "paused"
	if err := s.UpdateCluster(ctx, got); err != nil {
		t.Fatal(err)
	}
	if en, _ := s.EnabledClusters(ctx); len(en) != 0 {
		t.Errorf("a disabled cluster is listed as enabled: %v", en)
	}
	all, err := s.Clusters(ctx)
	if diff := cmp.Diff([]*portal.Cluster{got}, all); err != nil || diff != "" {
		t.Errorf("Clusters after update (%v), -updated +listed:\n%s", err, diff)
	}
	missing := demoCluster("ghost")
	missing.ID = 999999
	if err := s.UpdateCluster(ctx, missing); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("UpdateCluster of a missing cluster: %v, want ErrNotFound", err)
	}
}

func TestCreateClusterRefusesWhatTheSchemaForbids(t *testing.T) {
	ctx, s := start(t)
	valid := func() *portal.Cluster { return demoCluster("ok") }
	wantInvalid(t, valid, s.CreateCluster, []mutation[portal.Cluster]{
		{"name not a DNS label", func(c *portal.Cluster) { c.Name = "Not_A_Label" }},
		{"name ends with a dash", func(c *portal.Cluster) { c.Name = "bad-" }},
		{"URL without scheme", func(c *portal.Cluster) { c.PrometheusURL = "prometheus.x.2i2c.cloud" }},
		{"zero lifetime", func(c *portal.Cluster) { c.CredentialTTLDays = 0 }},
	})
	if all, _ := s.Clusters(ctx); len(all) != 0 {
		t.Errorf("refused clusters were stored: %v", all)
	}
}

func TestUpsertClusterIsIdempotent(t *testing.T) {
	ctx, s := start(t)
	c := demoCluster("2i2c")
	if changed, err := s.UpsertCluster(ctx, c); err != nil || !changed {
		t.Fatalf("first upsert: changed %v, err %v", changed, err)
	}
	same := demoCluster("2i2c")
	if changed, err := s.UpsertCluster(ctx, same); err != nil || changed {
		t.Errorf("same values again: changed %v, err %v; want no change", changed, err)
	}
	if diff := cmp.Diff(c, same); diff != "" {
		t.Errorf("unchanged upsert touched the row (-first +again):\n%s", diff)
	}
	edited := demoCluster("2i2c")
	edited.CredentialTTLDays = 30
	if changed, err := s.UpsertCluster(ctx, edited); err != nil || !changed || edited.ID != c.ID {
		t.Errorf("edited upsert: changed %v, err %v, id %d (want %d)", changed, err, edited.ID, c.ID)
	}
}
