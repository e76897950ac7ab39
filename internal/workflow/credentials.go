package workflow

import (
	"context"
	"fmt"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// Credential returns credential id to its owner or to staff; anyone else gets
// portal.ErrNotFound, as for a credential that does not exist.
func (s *Service) Credential(ctx context.Context, a Actor, id int64) (*portal.Credential, error) {
	return visible[*portal.Credential](a, Actor.mayRead)(s.store.CredentialByID(ctx, id))
}

// Credentials lists the actor's own credentials, newest first.
func (s *Service) Credentials(ctx context.Context, a Actor) ([]*portal.Credential, error) {
	if a.User == nil {
		return nil, portal.ErrForbidden
	}
	return s.store.CredentialsByUser(ctx, a.User.ID)
}

// Download returns credentials.txt.age of credential id, counts the download
// and audits it. Only the owner may download: for anyone else, staff
// included, the credential does not exist (portal.ErrNotFound). A revoked or
// expired credential is refused with an Error of portal.KindConflict.
func (s *Service) Download(ctx context.Context, a Actor, id int64) ([]byte, *portal.Credential, error) {
	var (
		cred       *portal.Credential
		ciphertext []byte
	)
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		var err error
		if cred, err = tx.CredentialByID(ctx, id); err != nil {
			return err
		}
		if !a.is(cred.UserID) {
			return fmt.Errorf("credential %d: %w", id, portal.ErrNotFound)
		}
		switch cred.State(s.now()) {
		case portal.CredentialRevoked:
			return portal.Errorf(portal.KindConflict, "This credential was revoked and no longer works. Request a new one.")
		case portal.CredentialExpired:
			return portal.Errorf(portal.KindConflict, "This credential has expired. Renew it to get a new one.")
		}
		if ciphertext, err = tx.CredentialCiphertext(ctx, id); err != nil {
			return err
		}
		n, err := tx.RecordDownload(ctx, id)
		if err != nil {
			return err
		}
		return audit(a.event(portal.ActionCredentialDownloaded, portal.SubjectCredential, id, &cred.ClusterID,
			map[string]any{"download": n}))
	})
	if err != nil {
		return nil, nil, err
	}
	return ciphertext, cred, nil
}
