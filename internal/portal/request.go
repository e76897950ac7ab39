package portal

import (
	"strings"
	"time"
)

// RequestStatus is where a request stands. Only a pending request can change.
type RequestStatus string

// The request statuses.
const (
	StatusPending   RequestStatus = "pending"
	StatusApproved  RequestStatus = "approved"
	StatusDenied    RequestStatus = "denied"
	StatusCancelled RequestStatus = "cancelled"
	StatusExpired   RequestStatus = "expired" // unanswered for too long
)

// Justification length limits, in characters.
const (
	MinJustification = 10
	MaxJustification = 2000
)

// KeyType is the kind of public key a Recipient holds. Its value is what the
// database stores in requests.key_type, so the strings must not change.
type KeyType string

// The key types the portal can encrypt to.
const (
	KeyAgeX25519  KeyType = "age-x25519"  // age1…, from age-keygen
	KeyAgePQ      KeyType = "age-pq"      // age1pq1…, from age-keygen -pq (ML-KEM-768 + X25519)
	KeySSHEd25519 KeyType = "ssh-ed25519" // via filippo.io/age/agessh
	KeySSHRSA     KeyType = "ssh-rsa"     // via filippo.io/age/agessh, at least 2048 bits
)

// Label is the key type as a person would name it.
func (t KeyType) Label() string {
	switch t {
	case KeyAgeX25519:
		return "age X25519"
	case KeyAgePQ:
		return "age post-quantum (ML-KEM-768 + X25519)"
	case KeySSHEd25519:
		return "SSH Ed25519"
	case KeySSHRSA:
		return "SSH RSA"
	}
	return string(t)
}

// Request is a customer's request for a credential on one cluster.
type Request struct {
	ID                 int64
	UserID             int64
	ClusterID          int64
	PublicKey          string
	KeyType            KeyType
	KeyFingerprint     string
	Justification      string
	Status             RequestStatus
	DecidedBy          *int64
	DecidedAt          *time.Time
	DecisionNote       string
	RenewsCredentialID *int64 // set when the request renews a credential
	CreatedAt          time.Time

	// Read with the request, for display.
	ClusterName    string
	RequesterEmail string
	// RequesterVerified says the identity provider verified RequesterEmail:
	// only then is the requester sent mail.
	RequesterVerified bool
	RequesterName     string
	DeciderEmail      string
	CredentialID      *int64 // the credential issued for it, once approved
	// DecidedByRule names the cluster policy's rule that approved the
	// request at once ("email_domain:earthscope.org"); "" when staff decided.
	DecidedByRule string
	// ApprovalsRequired is how many staff approvals the cluster's policy asks
	// for now, and Approvers who approved so far, in order.
	ApprovalsRequired int
	Approvers         []string
}

// Approval is one member of staff's approval of a request. A request needs
// as many as its cluster's policy requires, from different people.
type Approval struct {
	RequestID  int64
	ApproverID int64
	Note       string
	// ExpiresOn is the last day the approver agreed the credential may work;
	// zero for the cluster's default lifetime.
	ExpiresOn  time.Time
	ApprovedAt time.Time
}

// ApprovedByRule says, when the cluster's policy approved r at once, which
// rule did, as a person reads it; "" when staff decided.
func (r *Request) ApprovedByRule() string {
	rule, matched, ok := strings.Cut(r.DecidedByRule, ":")
	if !ok {
		return ""
	}
	return DescribeRule(rule, matched)
}

// Owner is the ID of the user the request is for: its requester.
func (r *Request) Owner() int64 { return r.UserID }
