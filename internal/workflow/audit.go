package workflow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// Bounds on the audit filter's free-form values.
const (
	maxActorFilter = 320 // the longest email address
	maxTextFilter  = 200
)

// AuditSubjectTypes are the subject types the audit filter takes.
var AuditSubjectTypes = []string{portal.SubjectUser, portal.SubjectRequest, portal.SubjectCredential, portal.SubjectCluster, portal.SubjectToken}

// AuditQuery is the audit review's filter as typed in the page's form or
// given as the API's query parameters, kept as text to fill the form in
// again.
type AuditQuery struct {
	Actor, Action, Cluster, SubjectType, SubjectID, From, To, Text string
}

// AuditPage is one page of the audit review, newest first.
type AuditPage struct {
	Events []*portal.AuditRecord
	// Next is the cursor of the next (older) page, or "" on the last.
	Next string
}

// filter checks q and turns it into the store's filter. Returns an Error of
// portal.KindInvalid naming the parameter at fault.
func (s *Service) filter(ctx context.Context, q AuditQuery) (portal.AuditFilter, error) {
	var f portal.AuditFilter
	// Typed text reaches PostgreSQL only once it is text: no NUL, valid UTF-8.
	for _, p := range []struct{ name, value string }{{"actor", q.Actor}, {"q", q.Text}, {"cluster", q.Cluster}} {
		if _, err := portal.CleanText(p.name, p.value, len(p.value)); err != nil {
			return f, err
		}
	}
	if utf8.RuneCountInString(q.Actor) > maxActorFilter {
		return f, portal.Invalid("actor", "actor is an email address of at most %d characters, or its beginning followed by *.", maxActorFilter)
	}
	f.Actor = q.Actor
	if q.Action != "" {
		if !slices.Contains(portal.Actions(), portal.Action(q.Action)) {
			return f, portal.Invalid("action", "action %q is not one the portal records; it is one of %s.", q.Action, actionList())
		}
		f.Action = portal.Action(q.Action)
	}
	if q.Cluster != "" {
		c, err := s.store.ClusterByName(ctx, q.Cluster)
		if errors.Is(err, portal.ErrNotFound) {
			return f, portal.Invalid("cluster", "There is no cluster called %q.", q.Cluster)
		}
		if err != nil {
			return f, err
		}
		f.ClusterID = c.ID
	}
	if q.SubjectType != "" {
		if !slices.Contains(AuditSubjectTypes, q.SubjectType) {
			return f, portal.Invalid("subject_type", "subject_type is one of %s.", strings.Join(AuditSubjectTypes, ", "))
		}
		f.SubjectType = q.SubjectType
	}
	if q.SubjectID != "" {
		id, err := strconv.ParseInt(q.SubjectID, 10, 64)
		if err != nil || id <= 0 {
			return f, portal.Invalid("subject_id", "subject_id is a positive whole number, such as a request's number.")
		}
		if f.SubjectType == "" {
			return f, portal.Invalid("subject_type", "Give subject_type with subject_id: the same number names a request and a credential.")
		}
		f.SubjectID = id
	}
	var err error
	if f.From, err = timeBound("from", q.From, false); err != nil {
		return f, err
	}
	if f.To, err = timeBound("to", q.To, true); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, portal.Invalid("to", "to (%s) must come after from (%s).", q.To, q.From)
	}
	if utf8.RuneCountInString(q.Text) > maxTextFilter {
		return f, portal.Invalid("q", "q, the text to search for in details, can be at most %d characters.", maxTextFilter)
	}
	f.Text = q.Text
	return f, nil
}

func actionList() string {
	names := make([]string, 0, len(portal.Actions()))
	for _, a := range portal.Actions() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// timeBound reads a time bound: a date (a whole day in UTC) or an RFC 3339
// time. A date as the upper bound includes that whole day.
func timeBound(param, v string, upper bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if upper {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, portal.Invalid(param, "%s is a date such as 2026-11-25 (UTC) or a time such as 2026-11-25T14:00:00Z.", param)
}

// Cursors are those of every paged list (portal.PageCursor): opaque to
// clients, the time and ID of the last event of a page.

func encodeCursor(r *portal.AuditRecord) string {
	return portal.PageCursor{At: r.At, ID: r.ID}.Encode()
}

func decodeCursor(v string) (*portal.AuditCursor, error) {
	c, err := portal.ParsePageCursor("cursor", v)
	if c == nil || err != nil {
		return nil, err
	}
	if c.Name != "" {
		return nil, portal.Invalid("cursor", "cursor is not one this portal handed out; start again from the first page.")
	}
	return &portal.AuditCursor{At: c.At, ID: c.ID}, nil
}

// AuditEvents is one page of the audit review for staff: up to limit (1 to
// portal.MaxAuditPage) events that match q, newest first, after cursor (a
// page's Next; "" for the newest). Returns portal.ErrForbidden for anyone but
// staff (the log names everyone), and an Error of portal.KindInvalid naming a
// filter parameter, the cursor or the limit at fault.
func (s *Service) AuditEvents(ctx context.Context, a Actor, q AuditQuery, cursor string, limit int) (*AuditPage, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	f, err := s.filter(ctx, q)
	if err != nil {
		return nil, err
	}
	if limit < 1 || limit > portal.MaxAuditPage {
		return nil, portal.Invalid("limit", "limit is a whole number from 1 to %d.", portal.MaxAuditPage)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	rs, err := s.store.AuditEvents(ctx, f, after, limit+1)
	if err != nil {
		return nil, err
	}
	if len(rs) <= limit {
		return &AuditPage{Events: rs}, nil
	}
	rs = rs[:limit]
	return &AuditPage{Events: rs, Next: encodeCursor(rs[limit-1])}, nil
}

// EachAuditEvent calls fn with every event that matches q, in chain order
// (oldest first), as the rows arrive: memory stays the same however many
// match. fn must not keep the record. Returns what AuditEvents returns, and
// fn's first error.
func (s *Service) EachAuditEvent(ctx context.Context, a Actor, q AuditQuery, fn func(*portal.AuditRecord) error) error {
	if !a.isStaff() {
		return portal.ErrForbidden
	}
	f, err := s.filter(ctx, q)
	if err != nil {
		return err
	}
	return s.store.EachAuditEvent(ctx, f, fn)
}

// LastAuditVerification is the most recent recorded walk of the audit
// chain, for staff. Returns portal.ErrNotFound when the chain was never
// verified, and portal.ErrForbidden for anyone but staff.
func (s *Service) LastAuditVerification(ctx context.Context, a Actor) (*portal.AuditVerification, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	return s.store.LastAuditVerification(ctx)
}

// VerifyAudit walks the audit chain from the event after sinceID (from the
// first when 0), recomputing every hash, and records the outcome for the
// audit page: `portal audit verify` (the system) and staff's "Verify now"
// both come here. progress, when not nil, hears the count every 100,000
// events. The result says where the chain breaks, if it does; that is not an
// error. Returns portal.ErrForbidden for customers, portal.ErrNotFound when
// event sinceID does not exist, and an Error of portal.KindConflict when
// another walk is running. When the walk ends but its result cannot be
// recorded, the result comes back with the error.
func (s *Service) VerifyAudit(ctx context.Context, a Actor, sinceID int64, progress func(n int64)) (*portal.AuditVerification, error) {
	if !a.isStaff() && !a.isSystem() {
		return nil, portal.ErrForbidden
	}
	v, err := s.store.VerifyAudit(ctx, sinceID, progress)
	if err != nil {
		return nil, err
	}
	v.VerifiedBy = a.label()
	attrs := []any{"verified_by", v.VerifiedBy, "events", v.Events, "head_id", v.HeadID,
		"head_hash", hex.EncodeToString(v.HeadHash), "took", v.Took.String(), "ok", v.OK()}
	if v.OK() {
		s.log.InfoContext(ctx, "audit chain verified", attrs...)
	} else {
		s.log.ErrorContext(ctx, "audit chain broken", append(attrs, "broken_id", v.Broken.ID, "problem", v.Broken.Problem)...)
	}
	if err := s.store.RecordAuditVerification(ctx, v); err != nil {
		return v, fmt.Errorf("recording the audit verification: %w", err)
	}
	return v, nil
}
