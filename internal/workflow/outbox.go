package workflow

import (
	"context"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// Outbox page sizes: those of every paged list.
const (
	DefaultOutboxPage = portal.DefaultPageSize
	MaxOutboxPage     = portal.MaxPageSize
)

// failingWindow is how far back the staff pages look for failing messages:
// a message that failed for good last month is history, not a warning.
const failingWindow = 7 * 24 * time.Hour

// OutboxPage is one page of the outbox for staff, newest first.
type OutboxPage struct {
	Messages []*portal.Message
	// Next is the Before of the next page; 0 on the last one.
	Next int64
	// Channels are the channels configured, so that the page can say how to
	// configure one when there are none.
	Channels Channels
}

// Outbox returns a page of the outbox to staff: messages with status (""
// for all) and IDs below before (0 for the newest), at most limit of them
// (DefaultOutboxPage when 0, never more than MaxOutboxPage). Returns
// portal.ErrForbidden for anyone else.
func (s *Service) Outbox(ctx context.Context, a Actor, status portal.MessageStatus, before int64, limit int) (*OutboxPage, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	switch status {
	case "", portal.MessageQueued, portal.MessageSent, portal.MessageFailed, portal.MessageUnsent:
	default:
		return nil, portal.Invalid("status", "Choose a status from the list: queued, sent, failed or unsent.")
	}
	if limit <= 0 {
		limit = DefaultOutboxPage
	}
	limit = min(limit, MaxOutboxPage)
	ms, err := s.store.Messages(ctx, store.MessageFilter{Status: status, Before: before, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	page := &OutboxPage{Messages: ms, Channels: s.notify.channels()}
	if len(ms) > limit {
		page.Messages = ms[:limit]
		page.Next = ms[limit-1].ID
	}
	return page, nil
}

// RetryMessage queues failed message id again, due at once, with a fresh
// day of retries, audited. Returns portal.ErrForbidden for anyone but
// staff, portal.ErrNotFound when there is no such message and an Error of
// portal.KindConflict when it has not failed.
func (s *Service) RetryMessage(ctx context.Context, a Actor, id int64) error {
	if !a.isStaff() {
		return portal.ErrForbidden
	}
	return s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		m, err := tx.MessageByID(ctx, id)
		if err != nil {
			return err
		}
		if m.Status != portal.MessageFailed {
			return portal.Errorf(portal.KindConflict, "Message #%d is %s, not failed: only a failed message can be retried.", id, m.Status)
		}
		if err := tx.RetryMessage(ctx, id); err != nil {
			return err
		}
		return audit(a.event(portal.ActionMessageRetried, portal.SubjectMessage, id, nil, map[string]any{
			"event": string(m.Event), "channel": string(m.Channel), "recipient": m.RecipientLabel(), "attempts": m.Attempts,
		}))
	})
}

// StaffSummary is what every staff page shows in its navigation and
// warnings.
type StaffSummary struct {
	Pending int64 // requests waiting for a decision
	Failing int64 // messages failing to go out, written in the last week
	// NoChannel is set when messages cannot go out at all.
	NoChannel bool
}

// StaffSummary returns the staff navigation's counts. Returns
// portal.ErrForbidden for anyone but staff.
func (s *Service) StaffSummary(ctx context.Context, a Actor) (*StaffSummary, error) {
	if !a.isStaff() {
		return nil, portal.ErrForbidden
	}
	pending, failing, err := s.store.StaffCounts(ctx, s.now().Add(-failingWindow))
	if err != nil {
		return nil, err
	}
	return &StaffSummary{Pending: pending, Failing: failing, NoChannel: s.notify.channels() == (Channels{})}, nil
}

// OutboxStats counts the outbox for the portal's metrics.
func (s *Service) OutboxStats(ctx context.Context) (store.OutboxStats, error) {
	return s.store.OutboxStats(ctx, s.now().Add(-failingWindow))
}
