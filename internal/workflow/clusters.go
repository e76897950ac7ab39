package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// Clusters lists clusters: every one for staff, the enabled ones for others.
func (s *Service) Clusters(ctx context.Context, a Actor) ([]*portal.Cluster, error) {
	if a.isStaff() {
		return s.store.Clusters(ctx)
	}
	return s.store.EnabledClusters(ctx)
}

// OpenClusters lists the clusters that take new requests, for the request
// form: staff see the same list there as customers.
func (s *Service) OpenClusters(ctx context.Context) ([]*portal.Cluster, error) {
	return s.store.EnabledClusters(ctx)
}

// Cluster returns cluster id to staff, for its page. Returns
// portal.ErrForbidden for anyone else and portal.ErrNotFound for an unknown
// cluster.
func (s *Service) Cluster(ctx context.Context, a Actor, id int64) (*portal.Cluster, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	return s.store.ClusterByID(ctx, id)
}

// CreateCluster adds a cluster. Returns portal.ErrForbidden for customers, an
// Error of portal.KindInvalid naming a wrong field, or an Error of
// portal.KindConflict when the name is taken.
func (s *Service) CreateCluster(ctx context.Context, a Actor, c *portal.Cluster) error {
	if !a.isStaff() {
		return portal.ErrForbidden
	}
	c.Normalize()
	if err := c.Validate(); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		if err := tx.CreateCluster(ctx, c); err != nil {
			return err
		}
		return audit(a.event(portal.ActionClusterCreated, portal.SubjectCluster, c.ID, &c.ID, clusterDetails(c)))
	})
	if errors.Is(err, portal.ErrConflict) {
		return portal.Errorf(portal.KindConflict, "A cluster called %s exists already.", c.Name)
	}
	return err
}

// UpdateCluster saves the editable fields of cluster c (found by c.ID).
// Returns what CreateCluster returns, and portal.ErrNotFound.
func (s *Service) UpdateCluster(ctx context.Context, a Actor, c *portal.Cluster) error {
	if !a.isStaff() {
		return portal.ErrForbidden
	}
	return s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		old, err := tx.ClusterByID(ctx, c.ID)
		if err != nil {
			return err
		}
		c.Name = old.Name // the name is the cluster's identity; it does not change
		c.Normalize()
		if err := c.Validate(); err != nil {
			return err
		}
		if err := tx.UpdateCluster(ctx, c); err != nil {
			return err
		}
		return audit(a.event(portal.ActionClusterUpdated, portal.SubjectCluster, c.ID, &c.ID, clusterChanges(old, c)))
	})
}

// clusterFile is the YAML form of PORTAL_CLUSTERS_FILE.
type clusterFile struct {
	Clusters []struct {
		Name              string `yaml:"name"`
		DisplayName       string `yaml:"display_name"`
		PrometheusURL     string `yaml:"prometheus_url"`
		CredentialTTLDays int    `yaml:"credential_ttl_days"`
		Note              string `yaml:"note"`
		Enabled           *bool  `yaml:"enabled"`
	} `yaml:"clusters"`
}

// ParseClusters reads a clusters file: a `clusters:` list of name,
// display_name, prometheus_url, credential_ttl_days (default 90), note and
// enabled (default true). Unknown keys are refused, so a typo cannot pass
// unnoticed. Returns an error naming the entry and field at fault.
func ParseClusters(r io.Reader) ([]*portal.Cluster, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f clusterFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("clusters file: %w", err)
	}
	seen := map[string]bool{}
	out := make([]*portal.Cluster, 0, len(f.Clusters))
	for i, e := range f.Clusters {
		c := &portal.Cluster{Name: e.Name, DisplayName: e.DisplayName, PrometheusURL: e.PrometheusURL,
			CredentialTTLDays: e.CredentialTTLDays, Note: e.Note, Enabled: e.Enabled == nil || *e.Enabled}
		if c.CredentialTTLDays == 0 {
			c.CredentialTTLDays = portal.DefaultCredentialTTLDays
		}
		c.Normalize()
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("clusters file: entry %d (%s): %w", i+1, e.Name, err)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("clusters file: entry %d: %s is listed twice", i+1, c.Name)
		}
		seen[c.Name] = true
		out = append(out, c)
	}
	return out, nil
}

// ImportClustersFile brings the clusters in the file at path into the
// database: new ones are created, changed ones updated, the same ones left
// alone, and clusters not in the file are kept. Importing a file twice
// changes nothing the second time. Returns how many clusters changed.
func (s *Service) ImportClustersFile(ctx context.Context, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("clusters file: %w", err)
	}
	defer f.Close()
	clusters, err := ParseClusters(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return s.ImportClusters(ctx, clusters)
}

// ImportClusters upserts clusters as the system, auditing each one that
// changed. Returns how many changed.
func (s *Service) ImportClusters(ctx context.Context, clusters []*portal.Cluster) (int, error) {
	changed := 0
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		changed = 0
		for _, c := range clusters {
			old, err := tx.ClusterByName(ctx, c.Name)
			if err != nil && !errors.Is(err, portal.ErrNotFound) {
				return err
			}
			did, err := tx.UpsertCluster(ctx, c)
			if err != nil {
				return err
			}
			if !did {
				continue
			}
			changed++
			if old == nil {
				err = audit(System.event(portal.ActionClusterCreated, portal.SubjectCluster, c.ID, &c.ID, clusterDetails(c)))
			} else {
				err = audit(System.event(portal.ActionClusterUpdated, portal.SubjectCluster, c.ID, &c.ID, clusterChanges(old, c)))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return changed, err
}

func clusterDetails(c *portal.Cluster) map[string]any {
	return map[string]any{"name": c.Name, "display_name": c.DisplayName, "prometheus_url": c.PrometheusURL,
		"credential_ttl_days": c.CredentialTTLDays, "enabled": c.Enabled, "note": c.Note}
}

// clusterChanges lists the fields that differ, as {"field": [old, new]}.
func clusterChanges(old, c *portal.Cluster) map[string]any {
	changes := map[string]any{"name": c.Name}
	before, after := clusterDetails(old), clusterDetails(c)
	for k, v := range after {
		if before[k] != v {
			changes[k] = []any{before[k], v}
		}
	}
	return changes
}
