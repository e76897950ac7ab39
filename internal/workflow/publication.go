package workflow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// syncTokenPrefix marks the portal's sync tokens, so that a leaked one is
// recognisable (secret scanners, logs) for what it is.
const syncTokenPrefix = "portal-sync-"

// RotateSyncToken makes a new sync token for the cluster's agent, replacing
// any earlier one, and returns it: it is shown once and stored only as its
// SHA-256 (256 random bits need no slow hash). Returns portal.ErrForbidden for
// customers and portal.ErrNotFound for an unknown cluster.
func (s *Service) RotateSyncToken(ctx context.Context, a Actor, clusterName string) (string, error) {
	if !a.isStaff() {
		return "", portal.ErrForbidden
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // crypto/rand.Read never fails
	token := syncTokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	hash := sha256.Sum256([]byte(token))
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		c, err := tx.ClusterByName(ctx, clusterName)
		if err != nil {
			return err
		}
		replaced := c.SyncTokenHash != nil
		if err := tx.SetSyncToken(ctx, c.ID, hash[:]); err != nil {
			return err
		}
		return audit(a.event(portal.ActionClusterSyncTokenRotated, portal.SubjectCluster, c.ID, &c.ID,
			map[string]any{"cluster": c.Name, "replaced_earlier_token": replaced}))
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// ClusterForSyncToken returns the cluster called name if token is its sync
// token, compared in constant time. Anything else (a token missing, wrong or
// another cluster's, a cluster that does not exist) is portal.ErrUnauthorized,
// with no hint of which part was wrong.
func (s *Service) ClusterForSyncToken(ctx context.Context, name, token string) (*portal.Cluster, error) {
	c, err := s.store.ClusterByName(ctx, name)
	if errors.Is(err, portal.ErrNotFound) {
		return nil, fmt.Errorf("sync token for cluster %q: %w", name, portal.ErrUnauthorized)
	}
	if err != nil {
		return nil, err
	}
	got := sha256.Sum256([]byte(token))
	if token == "" || c.SyncTokenHash == nil || subtle.ConstantTimeCompare(got[:], c.SyncTokenHash) != 1 {
		return nil, fmt.Errorf("sync token for cluster %q: %w", name, portal.ErrUnauthorized)
	}
	return c, nil
}

// ActiveCredentials are the credentials cluster c's Prometheus accepts now:
// approved, not revoked, not expired, ordered by username.
func (s *Service) ActiveCredentials(ctx context.Context, c *portal.Cluster) ([]*portal.Credential, error) {
	return s.store.ActiveCredentials(ctx, c.ID, s.now())
}
