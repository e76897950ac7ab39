package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// credentialSelect reads a credential with its display fields, but neither
// its ciphertext, which only the download needs (CredentialCiphertext), nor
// its password hash, which only the publication needs (ActiveCredentials):
// what is not read cannot leak into a page. Every listing of credentials goes
// through it, so the joins live here only.
const credentialSelect = `
	SELECT credentials.id, credentials.request_id, credentials.user_id, credentials.cluster_id,
	       credentials.username, credentials.key_fingerprint,
	       credentials.issued_at, credentials.expires_at, credentials.revoked_at, credentials.revoked_by,
	       credentials.revoke_reason, credentials.compromised, credentials.download_count,
	       credentials.last_download_at, clusters.name, clusters.prometheus_url, owner.email, owner.email_verified
	FROM credentials
	JOIN clusters ON clusters.id = credentials.cluster_id
	JOIN users owner ON owner.id = credentials.user_id`

func scanCredential(row pgx.Row) (*portal.Credential, error) {
	var c portal.Credential
	err := row.Scan(&c.ID, &c.RequestID, &c.UserID, &c.ClusterID,
		&c.Username, &c.KeyFingerprint,
		&c.IssuedAt, &c.ExpiresAt, &c.RevokedAt, &c.RevokedBy,
		&c.RevokeReason, &c.Compromised, &c.DownloadCount,
		&c.LastDownloadAt, &c.ClusterName, &c.PrometheusURL, &c.OwnerEmail, &c.OwnerVerified)
	return &c, err
}

// CreateCredential stores a credential issued for an approved request and
// fills in its ID, unless it has one drawn for it (LockForApproval); a zero
// IssuedAt is taken as now and filled in. Returns ErrCredentialClash (a
// portal.ErrConflict) if the request has a credential already or the username
// is taken on the cluster (without aborting the transaction, so the caller
// may retry with another username), portal.ErrInvalid if the schema's rules refuse a
// field (a malformed username, a password hash that is not bcrypt, an empty
// ciphertext, an expiry not after issuance).
func (s *Store) CreateCredential(ctx context.Context, c *portal.Credential) error {
	sql, args, scan := createCredential(c)
	return scan(s.db.QueryRow(ctx, sql, args...))
}

// ErrCredentialClash is a credential refused because its request has one
// already or its username is taken on the cluster.
var ErrCredentialClash = fmt.Errorf("username taken or request issued already: %w", portal.ErrConflict)

// CreateCredentialLater is CreateCredential held back, in a transaction, to
// go with the transaction's next statement or its commit, for a credential
// whose events and messages were written already: a clash (see
// ErrCredentialClash) then fails the transaction rather than leave it to
// retry, and the ID and time are filled in once the statement has gone.
// Outside a transaction it is CreateCredential.
func (s *Store) CreateCredentialLater(ctx context.Context, c *portal.Credential) error {
	t, ok := s.db.(*txdb)
	if !ok {
		return s.CreateCredential(ctx, c)
	}
	// Without ON CONFLICT: the clash must be PostgreSQL's error, which stops
	// the COMMIT that may ride in the same round trip.
	sql, args, _ := createCredential(c)
	sql = strings.Replace(sql, "ON CONFLICT DO NOTHING", "", 1)
	t.holdAhead(sql, args...).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&c.ID, &c.IssuedAt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation {
			return fmt.Errorf("store: create credential for request %d: username %s: %w", c.RequestID, c.Username, ErrCredentialClash)
		}
		return mapErr(fmt.Sprintf("create credential for request %d", c.RequestID), err)
	})
	return nil
}

// createCredential is the statement that stores c, and the scan of its
// answer.
func createCredential(c *portal.Credential) (string, []any, func(pgx.Row) error) {
	var issuedAt *time.Time
	if !c.IssuedAt.IsZero() {
		issuedAt = &c.IssuedAt
	}
	var id *int64 // nil: the next of the sequence
	if c.ID != 0 {
		id = &c.ID
	}
	scan := func(row pgx.Row) error {
		err := row.Scan(&c.ID, &c.IssuedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			// ON CONFLICT DO NOTHING: the clash is reported without aborting the
			// transaction, so the caller can draw another username and go on.
			return fmt.Errorf("store: create credential for request %d: username %s: %w", c.RequestID, c.Username, ErrCredentialClash)
		}
		return mapErr(fmt.Sprintf("create credential for request %d", c.RequestID), err)
	}
	return `
		INSERT INTO credentials (id, request_id, user_id, cluster_id, username, password_hash, ciphertext,
		                         key_fingerprint, issued_at, expires_at)
		OVERRIDING SYSTEM VALUE
		VALUES (coalesce($1, nextval(pg_get_serial_sequence('credentials', 'id'))), $2, $3, $4, $5, $6, $7, $8,
		        coalesce($9, now()), $10)
		ON CONFLICT DO NOTHING
		RETURNING id, issued_at`, []any{
			id, c.RequestID, c.UserID, c.ClusterID, c.Username, c.PasswordHash, c.Ciphertext,
			c.KeyFingerprint, issuedAt, c.ExpiresAt,
		}, scan
}

// CredentialByID returns the credential with id and its display fields,
// without its ciphertext. Returns portal.ErrNotFound if there is none.
func (s *Store) CredentialByID(ctx context.Context, id int64) (*portal.Credential, error) {
	c, err := scanCredential(s.db.QueryRow(ctx, credentialSelect+` WHERE credentials.id = $1`, id))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("credential %d", id), err)
	}
	return c, nil
}

// CredentialCiphertext returns the age-encrypted credentials.txt of the
// credential with id. Returns portal.ErrNotFound if there is none.
func (s *Store) CredentialCiphertext(ctx context.Context, id int64) ([]byte, error) {
	var ciphertext []byte
	err := s.db.QueryRow(ctx, `SELECT ciphertext FROM credentials WHERE id = $1`, id).Scan(&ciphertext)
	if err != nil {
		return nil, mapErr(fmt.Sprintf("ciphertext of credential %d", id), err)
	}
	return ciphertext, nil
}

// RecordDownload counts one more download of the credential with id, now,
// and returns the new count. Returns portal.ErrNotFound if there is none.
func (s *Store) RecordDownload(ctx context.Context, id int64) (int, error) {
	var count int
	err := s.db.QueryRow(ctx, `
		UPDATE credentials SET download_count = download_count + 1, last_download_at = now()
		WHERE id = $1
		RETURNING download_count`, id).Scan(&count)
	if err != nil {
		return 0, mapErr(fmt.Sprintf("record download of credential %d", id), err)
	}
	return count, nil
}

// userCredentialsOrder is the order of a customer's credentials: the newest
// issued first, on credentials_user_idx.
var userCredentialsOrder = keyset{at: "credentials.issued_at", id: "credentials.id", desc: true}

func userCredentialsQuery(userID int64, after *portal.PageCursor, limit int) (string, []any) {
	return userCredentialsOrder.page(credentialSelect, []string{"credentials.user_id = $1"}, []any{userID}, after, limit)
}

// UserCredentialsPage returns up to limit of the customer's credentials,
// whatever their state, newest issued first, after the cursor (from the
// newest when nil), without ciphertexts.
func (s *Store) UserCredentialsPage(ctx context.Context, userID int64, after *portal.PageCursor, limit int) ([]*portal.Credential, error) {
	sql, args := userCredentialsQuery(userID, after, pageLimit(limit))
	cs, err := collect(scanCredential)(s.db.Query(ctx, sql, args...))
	if err != nil {
		return nil, mapErr(fmt.Sprintf("credentials of user %d", userID), err)
	}
	return cs, nil
}

// activeCredentialsQuery is ActiveCredentials' statement, named so that a
// test can EXPLAIN it.
const activeCredentialsQuery = `
	SELECT id, user_id, cluster_id, username, password_hash, expires_at
	FROM credentials
	WHERE cluster_id = $1 AND revoked_at IS NULL AND expires_at > $2
	ORDER BY username COLLATE "C"`

// ActiveCredentials lists what the cluster's Prometheus should accept at now:
// its credentials neither revoked nor expired, by username. Only ID, UserID,
// ClusterID, Username, PasswordHash and ExpiresAt are filled. Every
// Prometheus web config is built from it, so it is one scan of
// credentials_active_idx; usernames sort bytewise ("C"), so that the order,
// and the config's ETag, do not hang on the database's locale.
func (s *Store) ActiveCredentials(ctx context.Context, clusterID int64, now time.Time) ([]*portal.Credential, error) {
	rows, err := s.db.Query(ctx, activeCredentialsQuery, clusterID, now)
	var cs []*portal.Credential
	if err == nil {
		cs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*portal.Credential, error) {
			var c portal.Credential
			err := row.Scan(&c.ID, &c.UserID, &c.ClusterID, &c.Username, &c.PasswordHash, &c.ExpiresAt)
			return &c, err
		})
	}
	if err != nil {
		return nil, mapErr(fmt.Sprintf("active credentials of cluster %d", clusterID), err)
	}
	return cs, nil
}

// RevokeCredential revokes the credential with id now, by the given user
// (nil for the portal itself), for reason, flagged compromised or not.
// Returns portal.ErrNotFound if there is no such credential, portal.ErrConflict
// if it is revoked already, portal.ErrInvalid if by is not a user.
func (s *Store) RevokeCredential(ctx context.Context, id int64, by *int64, reason string, compromised bool) error {
	return changedOnce(fmt.Sprintf("revoke credential %d", id), "revoked already", s.db.QueryRow(ctx, `
		WITH revoked AS (
			UPDATE credentials
			SET revoked_at = now(), revoked_by = $2, revoke_reason = $3, compromised = $4
			WHERE id = $1 AND revoked_at IS NULL
			RETURNING id
		)
		SELECT EXISTS (SELECT FROM revoked), EXISTS (SELECT FROM credentials WHERE id = $1)`,
		id, by, reason, compromised))
}

// revocationsOrder is the order of the revocation list: the latest
// revocation first, on credentials_revoked_idx. A revocation's time never
// changes once set.
var revocationsOrder = keyset{at: "credentials.revoked_at", id: "credentials.id", desc: true}

func revocationsQuery(after *portal.PageCursor, limit int) (string, []any) {
	return revocationsOrder.page(credentialSelect, []string{"credentials.revoked_at IS NOT NULL"}, nil, after, limit)
}

// RevocationsPage returns up to limit revoked credentials, the latest
// revocation first, after the cursor (from the latest when nil), with
// display fields but without ciphertexts.
func (s *Store) RevocationsPage(ctx context.Context, after *portal.PageCursor, limit int) ([]*portal.Credential, error) {
	sql, args := revocationsQuery(after, pageLimit(limit))
	cs, err := collect(scanCredential)(s.db.Query(ctx, sql, args...))
	if err != nil {
		return nil, mapErr("revocations", err)
	}
	return cs, nil
}

// revocationCountQuery counts revocations up to portal.CountCap+1. The order
// keeps it on credentials_revoked_idx, stopping at the cap, where
// PostgreSQL would otherwise scan the table when most credentials are revoked.
var revocationCountQuery = countCapped(`SELECT 1 FROM credentials WHERE revoked_at IS NOT NULL ORDER BY revoked_at DESC`)

// RevocationCount counts the revoked credentials, up to portal.CountCap+1:
// an index-only count that stops there.
func (s *Store) RevocationCount(ctx context.Context) (portal.Count, error) {
	var n int
	err := s.db.QueryRow(ctx, revocationCountQuery).Scan(&n)
	return portal.NewCount(n), mapErr("count revocations", err)
}

// CompromisedSince counts the credentials reported compromised since t.
func (s *Store) CompromisedSince(ctx context.Context, t time.Time) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM credentials WHERE compromised AND revoked_at >= $1`, t).Scan(&n)
	return n, mapErr("compromised since", err)
}
