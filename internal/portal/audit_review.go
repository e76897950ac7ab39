package portal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// AuditFilter selects audit events for review and export. The zero value
// selects every event; each field set narrows the selection further.
type AuditFilter struct {
	// Actor is an actor's email (or "system", "anonymous"), compared without
	// regard to case. A trailing "*" makes it a prefix: "alice*" or "*" alone
	// for anything.
	Actor       string
	Action      Action
	ClusterID   int64
	SubjectType string
	SubjectID   int64
	// From and To bound the event time: From <= at < To. Zero leaves the
	// bound open.
	From, To time.Time
	// Text is searched for in the details, without regard to case; % and _
	// are plain characters.
	Text string
}

// AuditCursor is where a page of the review ends: the time and ID of its
// last (oldest) event. The next page holds the events strictly older in
// (at, id) order, so events appended meanwhile do not shift it.
type AuditCursor struct {
	At time.Time
	ID int64
}

// AuditRecord is an audit event as the review shows it: with its cluster's
// name and, when the subject is a user, that user's email now.
type AuditRecord struct {
	AuditEvent
	ClusterName  string
	SubjectEmail string
}

// MaxAuditPage caps the events of one review page.
const MaxAuditPage = 500

// AuditVerification is the outcome of one walk of the audit chain.
type AuditVerification struct {
	ID         int64
	VerifiedAt time.Time
	VerifiedBy string // "portal audit verify", or the staff member who asked
	SinceID    int64  // the walk trusted this event's hash and began after it; 0 from the start
	Events     int64  // events checked, the broken one included
	HeadID     int64  // the last event that checked out; 0 when none did
	HeadHash   []byte
	Took       time.Duration
	Broken     *AuditBreak // nil when every event checked out
}

// OK reports whether every event checked out.
func (v *AuditVerification) OK() bool { return v.Broken == nil }

// AuditBreak is the first event of the chain that did not check out.
type AuditBreak struct {
	ID      int64
	At      time.Time
	Problem string // what is wrong, in a sentence
}

// DecodeDetails reads details as stored (jsonb) or exported, keeping every number's digits, so
// that the chain hash is computed over exactly what was written.
func DecodeDetails(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("details: %w", err)
	}
	return m, nil
}
