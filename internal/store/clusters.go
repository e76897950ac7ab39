package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

const clusterColumns = `id, name, display_name, prometheus_url, credential_ttl_days, note, enabled, created_at, updated_at,
	sync_token_hash, sync_token_created_at,
	auto_approve_email_domains, auto_approve_groups, approvals_required, max_ttl_days, request_ttl_days`

func scanCluster(row pgx.Row) (*portal.Cluster, error) {
	var c portal.Cluster
	p := &c.Policy
	err := row.Scan(&c.ID, &c.Name, &c.DisplayName, &c.PrometheusURL, &c.CredentialTTLDays,
		&c.Note, &c.Enabled, &c.CreatedAt, &c.UpdatedAt, &c.SyncTokenHash, &c.SyncTokenCreatedAt,
		&p.AutoApproveEmailDomains, &p.AutoApproveGroups, &p.ApprovalsRequired, &p.MaxTTLDays, &p.RequestTTLDays)
	p.AutoApproveEmailDomains, p.AutoApproveGroups = nilIfEmpty(p.AutoApproveEmailDomains), nilIfEmpty(p.AutoApproveGroups)
	return &c, err
}

// clusterValues are c's name and editable columns in the order the writes
// below take them, $1 to $11. A policy's zero ApprovalsRequired is the
// default, one.
func clusterValues(c *portal.Cluster) []any {
	p := &c.Policy
	return []any{c.Name, c.DisplayName, c.PrometheusURL, c.CredentialTTLDays, c.Note, c.Enabled,
		nonNil(p.AutoApproveEmailDomains), nonNil(p.AutoApproveGroups), p.Required(), p.MaxTTLDays, p.RequestTTLDays}
}

// nilIfEmpty is list, or nil when it is empty, as a policy with no rules
// holds them.
func nilIfEmpty(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	return list
}

// nonNil is list, or an empty list for nil: the columns are NOT NULL.
func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// Clusters lists every cluster, enabled or not, by name. Staff decide how
// many clusters exist (2i2c runs about 30), so the lists that offer every
// cluster to choose from (the audit filter, the queue's policies) take them
// whole; the clusters page and the API page them (ClustersPage).
func (s *Store) Clusters(ctx context.Context) ([]*portal.Cluster, error) {
	cs, err := collect(scanCluster)(s.db.Query(ctx, `SELECT `+clusterColumns+` FROM clusters ORDER BY name`))
	return cs, mapErr("clusters", err)
}

// EnabledClusters lists the clusters that take new requests, by name. The
// request form's choice of cluster is this whole list: staff decide how many
// clusters exist, and a choice split over pages would hide some.
func (s *Store) EnabledClusters(ctx context.Context) ([]*portal.Cluster, error) {
	cs, err := collect(scanCluster)(s.db.Query(ctx, `SELECT `+clusterColumns+` FROM clusters WHERE enabled ORDER BY name`))
	return cs, mapErr("enabled clusters", err)
}

// clustersQuery is ClustersPage's statement, on the names' unique index. A
// cluster's name never changes, so it is the order and the cursor alone.
func clustersQuery(enabledOnly bool, after *portal.PageCursor, limit int) (string, []any) {
	var (
		conds []string
		args  []any
	)
	if enabledOnly {
		conds = append(conds, "enabled")
	}
	if after != nil {
		args = append(args, after.Name)
		conds = append(conds, "name > $"+strconv.Itoa(len(args)))
	}
	return `SELECT ` + clusterColumns + ` FROM clusters` + whereClause(conds) + ` ORDER BY name` + limitClause(limit), args
}

// ClustersPage returns up to limit clusters by name, after the cursor's
// name (from the first when nil): every one, or the enabled ones only.
func (s *Store) ClustersPage(ctx context.Context, enabledOnly bool, after *portal.PageCursor, limit int) ([]*portal.Cluster, error) {
	sql, args := clustersQuery(enabledOnly, after, pageLimit(limit))
	cs, err := collect(scanCluster)(s.db.Query(ctx, sql, args...))
	return cs, mapErr("clusters", err)
}

// ClusterByName returns the cluster called name. Returns portal.ErrNotFound if
// there is none.
func (s *Store) ClusterByName(ctx context.Context, name string) (*portal.Cluster, error) {
	// A name no cluster can have is not asked for: a NUL or invalid UTF-8
	// would reach PostgreSQL as an error, not as "no such cluster".
	if !portal.ValidClusterName(name) {
		return nil, fmt.Errorf("store: cluster %q: %w", name, portal.ErrNotFound)
	}
	c, err := scanCluster(s.db.QueryRow(ctx, `SELECT `+clusterColumns+` FROM clusters WHERE name = $1`, name))
	if err != nil {
		return nil, mapErr("cluster "+name, err)
	}
	return c, nil
}

// ClusterByID returns the cluster with id. Returns portal.ErrNotFound if there
// is none.
func (s *Store) ClusterByID(ctx context.Context, id int64) (*portal.Cluster, error) {
	c, err := scanCluster(s.db.QueryRow(ctx, `SELECT `+clusterColumns+` FROM clusters WHERE id = $1`, id))
	if err != nil {
		return nil, mapErr("cluster by id", err)
	}
	return c, nil
}

// CreateCluster stores a new cluster and fills in its ID and times. Returns
// portal.ErrConflict if the name is taken, portal.ErrInvalid if the schema's
// rules refuse a field.
func (s *Store) CreateCluster(ctx context.Context, c *portal.Cluster) error {
	err := s.db.QueryRow(ctx, `
		INSERT INTO clusters (name, display_name, prometheus_url, credential_ttl_days, note, enabled,
		                      auto_approve_email_domains, auto_approve_groups, approvals_required, max_ttl_days, request_ttl_days)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		RETURNING id, created_at, updated_at`,
		clusterValues(c)...,
	).Scan(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	return mapErr("create cluster "+c.Name, err)
}

// UpdateCluster saves every field of c but its name and ID. Returns
// portal.ErrNotFound if c.ID does not exist.
func (s *Store) UpdateCluster(ctx context.Context, c *portal.Cluster) error {
	err := s.db.QueryRow(ctx, `
		UPDATE clusters
		SET display_name = $2, prometheus_url = $3, credential_ttl_days = $4, note = $5, enabled = $6,
		    auto_approve_email_domains = $7, auto_approve_groups = $8, approvals_required = $9,
		    max_ttl_days = $10, request_ttl_days = $11, updated_at = now()
		WHERE id = $1
		RETURNING updated_at`,
		append([]any{c.ID}, clusterValues(c)[1:]...)...,
	).Scan(&c.UpdatedAt)
	return mapErr("update cluster "+c.Name, err)
}

// UpsertCluster creates c or, when its name exists, brings the stored cluster
// to c's values. It reports whether anything changed, so an import of the
// same file twice is a no-op. c's ID and times are filled in.
func (s *Store) UpsertCluster(ctx context.Context, c *portal.Cluster) (changed bool, err error) {
	err = s.db.QueryRow(ctx, `
		INSERT INTO clusters (name, display_name, prometheus_url, credential_ttl_days, note, enabled,
		                      auto_approve_email_domains, auto_approve_groups, approvals_required, max_ttl_days, request_ttl_days)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (name) DO UPDATE
		SET display_name = EXCLUDED.display_name, prometheus_url = EXCLUDED.prometheus_url,
		    credential_ttl_days = EXCLUDED.credential_ttl_days, note = EXCLUDED.note,
		    enabled = EXCLUDED.enabled, auto_approve_email_domains = EXCLUDED.auto_approve_email_domains,
		    auto_approve_groups = EXCLUDED.auto_approve_groups, approvals_required = EXCLUDED.approvals_required,
		    max_ttl_days = EXCLUDED.max_ttl_days, request_ttl_days = EXCLUDED.request_ttl_days, updated_at = now()
		WHERE (clusters.display_name, clusters.prometheus_url, clusters.credential_ttl_days, clusters.note, clusters.enabled,
		       clusters.auto_approve_email_domains, clusters.auto_approve_groups, clusters.approvals_required,
		       clusters.max_ttl_days, clusters.request_ttl_days)
		   IS DISTINCT FROM (EXCLUDED.display_name, EXCLUDED.prometheus_url, EXCLUDED.credential_ttl_days, EXCLUDED.note, EXCLUDED.enabled,
		       EXCLUDED.auto_approve_email_domains, EXCLUDED.auto_approve_groups, EXCLUDED.approvals_required,
		       EXCLUDED.max_ttl_days, EXCLUDED.request_ttl_days)
		RETURNING id, created_at, updated_at`,
		clusterValues(c)...,
	).Scan(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		// The row exists and already holds these values.
		stored, err := s.ClusterByName(ctx, c.Name)
		if err != nil {
			return false, err
		}
		*c = *stored
		return false, nil
	}
	if err != nil {
		return false, mapErr("upsert cluster "+c.Name, err)
	}
	return true, nil
}

// SetSyncToken stores the SHA-256 of cluster id's new sync token, replacing
// the old one. Returns portal.ErrNotFound if there is no such cluster.
func (s *Store) SetSyncToken(ctx context.Context, id int64, hash []byte) error {
	tag, err := s.db.Exec(ctx, `UPDATE clusters SET sync_token_hash = $2, sync_token_created_at = now() WHERE id = $1`, id, hash)
	if err != nil {
		return mapErr("set sync token", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: set sync token: cluster %d: %w", id, portal.ErrNotFound)
	}
	return nil
}
