package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// Clusters lists clusters whole: every one for staff, the enabled ones for
// others, for the lists that offer every cluster to choose from. Staff
// decide how many clusters exist; the clusters page and the API page them
// (ClustersPage).
func (s *Service) Clusters(ctx context.Context, a Actor) ([]*portal.Cluster, error) {
	if a.isStaff() {
		return s.store.Clusters(ctx)
	}
	return s.store.EnabledClusters(ctx)
}

// ClustersPage is a page of clusters by name: every one for staff, the
// enabled ones for others. Returns an Error of portal.KindInvalid for a
// limit out of range.
func (s *Service) ClustersPage(ctx context.Context, a Actor, q portal.PageQuery) (*portal.Page[*portal.Cluster], error) {
	if err := q.Valid(); err != nil {
		return nil, err
	}
	cs, err := s.store.ClustersPage(ctx, !a.isStaff(), q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	return portal.NewPage(cs, q.Limit, func(c *portal.Cluster) portal.PageCursor {
		return portal.PageCursor{Name: c.Name, ID: c.ID}
	}), nil
}

// OpenClusters lists the clusters that take new requests, for the request
// form: staff see the same list there as customers. It is the whole list,
// not a page: staff decide how many clusters exist (about 30), and a choice
// split over pages would hide some.
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

// ClusterNamed returns cluster name: to staff any, to others an enabled
// one. Returns portal.ErrNotFound for an unknown cluster, and for a disabled
// one to customers.
func (s *Service) ClusterNamed(ctx context.Context, a Actor, name string) (*portal.Cluster, error) {
	c, err := s.store.ClusterByName(ctx, name)
	if err != nil {
		return nil, err
	}
	if !c.Enabled && !a.isStaff() {
		return nil, fmt.Errorf("cluster %s: %w", name, portal.ErrNotFound)
	}
	return c, nil
}

// DefaultRequestTTL is how long a request waits for a decision on a cluster
// whose policy sets no request lifetime.
func (s *Service) DefaultRequestTTL() time.Duration { return s.notify.RequestTTL }

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
		Name              string      `yaml:"name"`
		DisplayName       string      `yaml:"display_name"`
		PrometheusURL     string      `yaml:"prometheus_url"`
		CredentialTTLDays int         `yaml:"credential_ttl_days"`
		Note              string      `yaml:"note"`
		Enabled           *bool       `yaml:"enabled"`
		Policy            *PolicySpec `yaml:"policy"`
	} `yaml:"clusters"`
}

// PolicySpec is a cluster's access policy as the clusters file and the API
// write it. Absent keys take their defaults: no auto-approval, one
// approval, no longer than the cluster's credential lifetime, the portal's
// request lifetime.
type PolicySpec struct {
	AutoApprove struct {
		EmailDomains []string `yaml:"email_domains" json:"email_domains"`
		Groups       []string `yaml:"groups" json:"groups"`
	} `yaml:"auto_approve" json:"auto_approve"`
	ApprovalsRequired int `yaml:"approvals_required" json:"approvals_required"`
	MaxTTLDays        int `yaml:"max_ttl_days" json:"max_ttl_days"`
	RequestTTLDays    int `yaml:"request_ttl_days" json:"request_ttl_days"`
}

// Policy is the portal.Policy the spec describes; nil is the default.
func (p *PolicySpec) Policy() portal.Policy {
	if p == nil {
		return portal.DefaultPolicy()
	}
	return portal.Policy{
		AutoApproveEmailDomains: p.AutoApprove.EmailDomains, AutoApproveGroups: p.AutoApprove.Groups,
		ApprovalsRequired: p.ApprovalsRequired, MaxTTLDays: p.MaxTTLDays, RequestTTLDays: p.RequestTTLDays,
	}
}

// SpecOf is p as the clusters file and the API write it.
func SpecOf(p portal.Policy) PolicySpec {
	var s PolicySpec
	s.AutoApprove.EmailDomains, s.AutoApprove.Groups = nonNil(p.AutoApproveEmailDomains), nonNil(p.AutoApproveGroups)
	s.ApprovalsRequired, s.MaxTTLDays, s.RequestTTLDays = p.ApprovalsRequired, p.MaxTTLDays, p.RequestTTLDays
	return s
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// ParseClusters reads a clusters file: a `clusters:` list of name,
// display_name, prometheus_url, credential_ttl_days (default 90), note,
// enabled (default true) and policy (a PolicySpec). Unknown keys are
// refused, so a typo cannot pass unnoticed, and so is a second YAML
// document, which would be left out. Returns an error naming the
// entry and field at fault.
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
	// A decoder reads one document: clusters after a "---" would be
	// silently left out.
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, errors.New(`clusters file: a second YAML document follows the first: write one "clusters:" list, with no "---" after it`)
	}
	seen := map[string]bool{}
	out := make([]*portal.Cluster, 0, len(f.Clusters))
	for i, e := range f.Clusters {
		c := &portal.Cluster{Name: e.Name, DisplayName: e.DisplayName, PrometheusURL: e.PrometheusURL,
			CredentialTTLDays: e.CredentialTTLDays, Note: e.Note, Enabled: e.Enabled == nil || *e.Enabled,
			Policy: e.Policy.Policy()}
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
	p := &c.Policy
	return map[string]any{"name": c.Name, "display_name": c.DisplayName, "prometheus_url": c.PrometheusURL,
		"credential_ttl_days": c.CredentialTTLDays, "enabled": c.Enabled, "note": c.Note,
		"policy.auto_approve.email_domains": nonNil(p.AutoApproveEmailDomains),
		"policy.auto_approve.groups":        nonNil(p.AutoApproveGroups),
		"policy.approvals_required":         p.ApprovalsRequired,
		"policy.max_ttl_days":               p.MaxTTLDays,
		"policy.request_ttl_days":           p.RequestTTLDays,
	}
}

// clusterChanges lists the fields that differ, as {"field": [old, new]}.
func clusterChanges(old, c *portal.Cluster) map[string]any {
	changes := map[string]any{"name": c.Name}
	before, after := clusterDetails(old), clusterDetails(c)
	for k, v := range after {
		// Printed, as lists do not compare with !=.
		if fmt.Sprint(before[k]) != fmt.Sprint(v) {
			changes[k] = []any{before[k], v}
		}
	}
	return changes
}
