package portal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Action names what an audit event records. The list is fixed: every event
// the portal writes uses one of these.
type Action string

// The audit actions.
const (
	ActionSignedIn      Action = "user.signed_in"
	ActionSignedOut     Action = "user.signed_out"
	ActionSignInFailed  Action = "user.sign_in_failed"
	ActionAccessRefused Action = "access.refused" // a 403: someone tried what they may not

	ActionSessionEnded  Action = "user.session_ended"  // one of a person's sessions, by them or staff
	ActionSessionsEnded Action = "user.sessions_ended" // all of a person's sessions: signed out everywhere

	ActionRequestCreated   Action = "request.created"
	ActionRequestCancelled Action = "request.cancelled"
	ActionRequestApproved  Action = "request.approved"
	ActionRequestDenied    Action = "request.denied"
	ActionRequestExpired   Action = "request.expired" // unanswered for too long
	// ActionApprovalRecorded is one staff approval of a request that needs
	// more than one; the request stays pending.
	ActionApprovalRecorded Action = "request.approval_recorded"
	// ActionRequestAutoApproved tells staff that a policy rule approved a
	// request; the audit log has request.approved by the policy.
	ActionRequestAutoApproved Action = "request.auto_approved"

	ActionCredentialIssued      Action = "credential.issued"
	ActionCredentialDownloaded  Action = "credential.downloaded"
	ActionCredentialRevoked     Action = "credential.revoked"
	ActionCredentialCompromised Action = "credential.reported_compromised"
	ActionCredentialReminder    Action = "credential.expiry_reminder_due"

	ActionClusterCreated          Action = "cluster.created"
	ActionClusterUpdated          Action = "cluster.updated"
	ActionClusterSyncTokenRotated Action = "cluster.sync_token_rotated"

	ActionMessageRetried Action = "message.retried" // staff sent a failed message again

	ActionTokenCreated Action = "token.created" // a personal access token; details name its scopes, never its value
	ActionTokenRevoked Action = "token.revoked" // by its owner or staff
	// ActionTokensRevoked is every active token of a person revoked at
	// once, by them or staff: someone who left, a laptop lost.
	ActionTokensRevoked Action = "user.tokens_revoked"
)

// Actions lists every action, for filters and documentation.
func Actions() []Action {
	return []Action{
		ActionSignedIn, ActionSignedOut, ActionSignInFailed, ActionAccessRefused,
		ActionSessionEnded, ActionSessionsEnded,
		ActionRequestCreated, ActionRequestCancelled, ActionRequestApproved, ActionRequestDenied,
		ActionRequestExpired, ActionApprovalRecorded,
		ActionCredentialIssued, ActionCredentialDownloaded, ActionCredentialRevoked,
		ActionCredentialCompromised, ActionCredentialReminder,
		ActionClusterCreated, ActionClusterUpdated, ActionClusterSyncTokenRotated,
		ActionMessageRetried,
		ActionTokenCreated, ActionTokenRevoked, ActionTokensRevoked,
	}
}

// Subject types of audit events.
const (
	SubjectUser       = "user"
	SubjectRequest    = "request"
	SubjectCredential = "credential"
	SubjectCluster    = "cluster"
	SubjectMessage    = "message"
	SubjectToken      = "token"
)

// Actors that are not users.
const (
	ActorSystem    = "system"    // the portal itself
	ActorPolicy    = "policy"    // a cluster's access policy, approving by a rule
	ActorAnonymous = "anonymous" // someone not signed in
)

// AuditEvent is one line of the append-only audit log. Details never hold a
// secret.
type AuditEvent struct {
	ID          int64
	At          time.Time // microsecond precision, as PostgreSQL keeps it
	ActorID     *int64    // nil for the system and for people not signed in
	Actor       string    // the actor's email at the time, or ActorSystem
	Action      Action
	SubjectType string
	SubjectID   *int64
	ClusterID   *int64
	Details     map[string]any
	IP          string
	UserAgent   string
	PrevHash    []byte
	Hash        []byte
}

// GenesisHash is the PrevHash of the first event of the chain: 32 zero
// bytes, new at each call so that no caller can change it for the others.
func GenesisHash() []byte { return make([]byte, sha256.Size) }

// AuditTimeFormat is how the chain hashes an event's time, and how exports
// show it: UTC with microseconds, as PostgreSQL keeps it.
const AuditTimeFormat = "2006-01-02T15:04:05.000000Z"

// canonicalEvent fixes the field order and formats of the hashed encoding.
type canonicalEvent struct {
	At          string          `json:"at"`
	ActorID     *int64          `json:"actor_id"`
	Actor       string          `json:"actor"`
	Action      Action          `json:"action"`
	SubjectType string          `json:"subject_type"`
	SubjectID   *int64          `json:"subject_id"`
	ClusterID   *int64          `json:"cluster_id"`
	Details     json.RawMessage `json:"details"`
	IP          string          `json:"ip"`
	UserAgent   string          `json:"user_agent"`
}

// CanonicalDetails encodes details the one way the chain hashes them: JSON
// with sorted keys and numbers as written. It accepts details as built in Go
// or as read back from PostgreSQL's jsonb, which reorders keys. Returns
// ErrInvalid if details cannot be encoded.
func CanonicalDetails(details map[string]any) ([]byte, error) {
	if details == nil {
		details = map[string]any{}
	}
	raw, err := json.Marshal(details)
	if err != nil {
		return nil, fmt.Errorf("%w: audit details: %s", ErrInvalid, err.Error())
	}
	// Round-trip with UseNumber so that numbers keep their digits whatever
	// their Go type was.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var norm map[string]any
	if err := dec.Decode(&norm); err != nil {
		return nil, fmt.Errorf("%w: audit details: %s", ErrInvalid, err.Error())
	}
	return json.Marshal(norm)
}

// ChainHash is SHA-256(prev || canonical encoding of e), the hash e must
// carry when it follows an event whose hash is prev.
func (e *AuditEvent) ChainHash(prev []byte) ([]byte, error) {
	details, err := CanonicalDetails(e.Details)
	if err != nil {
		return nil, err
	}
	enc, err := json.Marshal(canonicalEvent{
		At: e.At.UTC().Format(AuditTimeFormat), ActorID: e.ActorID, Actor: e.Actor,
		Action: e.Action, SubjectType: e.SubjectType, SubjectID: e.SubjectID, ClusterID: e.ClusterID,
		Details: details, IP: e.IP, UserAgent: e.UserAgent,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: audit event: %s", ErrInvalid, err.Error())
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(enc)
	return h.Sum(nil), nil
}

// ChainLink is the event an event follows in the audit chain, as far as
// checking the link needs: its ID, hash and time. The first event follows
// the zero ChainLink with the genesis hash.
type ChainLink struct {
	ID   int64 // 0 for the genesis hash
	Hash []byte
	At   time.Time // zero for the genesis hash
}

// CheckLink says what is wrong with e as read back from the log, with its
// details as stored (JSON), when it follows prev; it returns "" when e
// checks out. e must link to prev's hash, hash to its own, and be no older
// than prev: events are dated by the database's clock as they are appended,
// so time never goes backwards along the chain, and an event that does was
// back-dated (a hash covers the time, so only by whoever computed a hash for
// it) or moved. It sets e.Details from details. This is the check `portal
// audit verify` makes of every link of the chain.
func CheckLink(e *AuditEvent, details []byte, prev ChainLink) string {
	before := fmt.Sprintf("event %d", prev.ID)
	if prev.ID == 0 {
		before = "the genesis hash"
	}
	if !bytes.Equal(e.PrevHash, prev.Hash) {
		return fmt.Sprintf("prev_hash does not link: it is %s, but the hash of %s is %s; "+
			"an event between them was deleted or inserted, or one of them rewritten",
			short(e.PrevHash), before, short(prev.Hash))
	}
	var err error
	if e.Details, err = DecodeDetails(details); err != nil {
		return "details are not a JSON object: " + err.Error()
	}
	want, err := e.ChainHash(e.PrevHash)
	if err != nil {
		return "the event cannot be encoded for hashing: " + err.Error()
	}
	if !bytes.Equal(e.Hash, want) {
		return fmt.Sprintf("hash mismatch: the stored hash is %s, the event's content hashes to %s; the event was changed after it was written",
			short(e.Hash), short(want))
	}
	if e.At.Before(prev.At) {
		return fmt.Sprintf("older than its predecessor: it is dated %s, before %s (%s); the portal dates events "+
			"by the database's clock as it appends them, so this one was back-dated or written out of order",
			e.At.UTC().Format(AuditTimeFormat), before, prev.At.UTC().Format(AuditTimeFormat))
	}
	return ""
}

// short is the first 16 hex digits of a hash, enough to tell hashes apart in
// a message.
func short(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
