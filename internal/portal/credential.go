package portal

import "time"

// CredentialState is what a credential is worth right now.
type CredentialState string

// The credential states.
const (
	CredentialActive  CredentialState = "active"
	CredentialExpired CredentialState = "expired"
	CredentialRevoked CredentialState = "revoked"
)

// Credential is a Prometheus basic-auth credential issued for an approved
// request. It never holds the password: only its bcrypt hash, and the
// credentials.txt encrypted to the customer's key.
type Credential struct {
	ID             int64
	RequestID      int64
	UserID         int64
	ClusterID      int64
	Username       string
	PasswordHash   string
	Ciphertext     []byte // loaded only where it is needed: the download
	KeyFingerprint string
	IssuedAt       time.Time
	ExpiresAt      time.Time
	RevokedAt      *time.Time
	RevokedBy      *int64
	RevokeReason   string
	Compromised    bool
	DownloadCount  int
	LastDownloadAt *time.Time

	// Read with the credential, for display.
	ClusterName   string
	PrometheusURL string
	OwnerEmail    string
	OwnerVerified bool // the identity provider verified OwnerEmail: only then is the owner sent mail
}

// State is the credential's state at now: revoked wins over expired.
func (c *Credential) State(now time.Time) CredentialState {
	switch {
	case c.RevokedAt != nil:
		return CredentialRevoked
	case !now.Before(c.ExpiresAt):
		return CredentialExpired
	}
	return CredentialActive
}

// Owner is the ID of the user the credential was issued to.
func (c *Credential) Owner() int64 { return c.UserID }
