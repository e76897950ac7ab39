package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

const messageColumns = `id, created_at, event, audience, user_id, channel, recipient, subject, body_text, body_html,
	link, status, attempts, queued_at, next_attempt_at, last_error, sent_at`

func scanMessage(row pgx.Row) (*portal.Message, error) {
	var m portal.Message
	err := row.Scan(&m.ID, &m.CreatedAt, &m.Event, &m.Audience, &m.UserID, &m.Channel, &m.Recipient, &m.Subject,
		&m.Text, &m.HTML, &m.Link, &m.Status, &m.Attempts, &m.QueuedAt, &m.NextAttemptAt, &m.LastError, &m.SentAt)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// QueueMessages writes messages to the outbox, in one statement however
// many there are, and fills in their IDs and times: in a transaction, when
// the statement goes, held back, with the transaction's next one. A message on
// portal.ChannelNone is stored as unsent with its LastError; every other is
// queued, due at once.
func (s *Store) QueueMessages(ctx context.Context, ms ...*portal.Message) error {
	if len(ms) == 0 {
		return nil
	}
	// One row of VALUES per message: for the one or few messages an action
	// writes, cheaper for PostgreSQL than unnesting arrays.
	const columns = 11
	var sql strings.Builder
	sql.WriteString(`INSERT INTO messages (event, audience, channel, recipient, subject, body_text, body_html, link, status, last_error, user_id) VALUES `)
	args := make([]any, 0, columns*len(ms))
	for i, m := range ms {
		m.Status = portal.MessageQueued
		if m.Channel == portal.ChannelNone {
			m.Status = portal.MessageUnsent
		}
		if i > 0 {
			sql.WriteString(", ")
		}
		sql.WriteByte('(')
		for c := range columns {
			if c > 0 {
				sql.WriteString(", ")
			}
			fmt.Fprintf(&sql, "$%d", i*columns+c+1)
		}
		sql.WriteByte(')')
		args = append(args, string(m.Event), string(m.Audience), string(m.Channel), m.Recipient, m.Subject,
			m.Text, m.HTML, m.Link, string(m.Status), m.LastError, m.UserID)
	}
	sql.WriteString(` RETURNING id, created_at, queued_at, next_attempt_at`)
	read := func(rows pgx.Rows) error {
		defer rows.Close()
		// INSERT … VALUES returns its rows in the order of the VALUES.
		for i := 0; rows.Next(); i++ {
			if err := rows.Scan(&ms[i].ID, &ms[i].CreatedAt, &ms[i].QueuedAt, &ms[i].NextAttemptAt); err != nil {
				return mapErr("queue messages", err)
			}
		}
		return mapErr("queue messages", rows.Err())
	}
	if t, ok := s.db.(*txdb); ok {
		t.holdAhead(sql.String(), args...).Query(read)
		return nil
	}
	rows, err := s.db.Query(ctx, sql.String(), args...)
	if err != nil {
		return mapErr("queue messages", err)
	}
	return read(rows)
}

// ClaimMessages claims up to limit due messages for delivery, skipping those
// another worker holds, oldest due first. Each claimed message counts one
// more attempt and is held for lease: if it is neither sent nor rescheduled
// by then (its worker died), it is due again for any worker.
func (s *Store) ClaimMessages(ctx context.Context, limit int, lease time.Duration) ([]*portal.Message, error) {
	ms, err := collect(scanMessage)(s.db.Query(ctx, `
		UPDATE messages SET attempts = attempts + 1, next_attempt_at = now() + $2::interval
		WHERE id IN (
			SELECT id FROM messages
			WHERE status = 'queued' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id
			LIMIT $1
			FOR UPDATE SKIP LOCKED)
		RETURNING `+messageColumns, limit, lease))
	return ms, mapErr("claim messages", err)
}

// MessageSent marks claimed message id sent. Its last error, if an attempt
// failed before, stays for staff to see.
func (s *Store) MessageSent(ctx context.Context, id int64) error {
	_, err := s.db.Exec(ctx, `
		UPDATE messages SET status = 'sent', sent_at = now(), next_attempt_at = now()
		WHERE id = $1 AND status = 'queued'`, id)
	return mapErr(fmt.Sprintf("message %d sent", id), err)
}

// MessageNotDelivered records a failed attempt at claimed message id: it is
// due again after retryIn, or, once giveUpAfter has passed since it was
// queued, failed for good. Reports whether it failed for good.
func (s *Store) MessageNotDelivered(ctx context.Context, id int64, why string, retryIn, giveUpAfter time.Duration) (failed bool, err error) {
	var status portal.MessageStatus
	err = s.db.QueryRow(ctx, `
		UPDATE messages SET last_error = $2,
			status = CASE WHEN now() + $3::interval >= queued_at + $4::interval THEN 'failed' ELSE 'queued' END,
			next_attempt_at = now() + $3::interval
		WHERE id = $1 AND status = 'queued'
		RETURNING status`, id, why, retryIn, giveUpAfter).Scan(&status)
	return status == portal.MessageFailed, mapErr(fmt.Sprintf("message %d not delivered", id), err)
}

// ReleaseMessages hands claimed messages that were not attempted back to
// the outbox, due at once, their claim's attempt uncounted: a worker
// stopping with messages in hand that it did not start.
func (s *Store) ReleaseMessages(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.db.Exec(ctx, `
		UPDATE messages SET attempts = greatest(attempts - 1, 0), next_attempt_at = now()
		WHERE id = ANY($1) AND status = 'queued'`, ids)
	return mapErr("release messages", err)
}

// NextMessageDue is when the next queued message is due; ok is false when
// none is queued.
func (s *Store) NextMessageDue(ctx context.Context) (at time.Time, ok bool, err error) {
	var next *time.Time
	err = s.db.QueryRow(ctx, `SELECT min(next_attempt_at) FROM messages WHERE status = 'queued'`).Scan(&next)
	if err != nil || next == nil {
		return time.Time{}, false, mapErr("next message due", err)
	}
	return *next, true, nil
}

// MessageFilter selects a page of the outbox, newest first.
type MessageFilter struct {
	Status portal.MessageStatus // "" for every status
	Before int64                // only messages with IDs below this; 0 for the newest
	Limit  int
}

// Messages returns a page of the outbox: messages matching f, newest first.
func (s *Store) Messages(ctx context.Context, f MessageFilter) ([]*portal.Message, error) {
	before := f.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	ms, err := collect(scanMessage)(s.db.Query(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE id < $1 AND ($2 = '' OR status = $2)
		ORDER BY id DESC`+limitClause(max(1, f.Limit)), before, string(f.Status)))
	return ms, mapErr("messages", err)
}

// MessageByID returns message id. Returns portal.ErrNotFound when there is
// no such message.
func (s *Store) MessageByID(ctx context.Context, id int64) (*portal.Message, error) {
	m, err := scanMessage(s.db.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`, id))
	return m, mapErr(fmt.Sprintf("message %d", id), err)
}

// RetryMessage queues failed message id again, due at once, with a fresh
// day of retries that start again from the shortest pause. Returns portal.ErrNotFound when there is no such message
// and portal.ErrConflict when it has not failed.
func (s *Store) RetryMessage(ctx context.Context, id int64) error {
	return changedOnce(fmt.Sprintf("retry message %d", id), "not failed", s.db.QueryRow(ctx, `
		WITH retried AS (
			UPDATE messages SET status = 'queued', queued_at = now(), next_attempt_at = now(), attempts = 0
			WHERE id = $1 AND status = 'failed'
			RETURNING id)
		SELECT EXISTS (SELECT 1 FROM retried), EXISTS (SELECT 1 FROM messages WHERE id = $1)`, id))
}

// OutboxStats is the outbox at a glance: queued messages by channel, the
// oldest queued message's time, and how many messages are failing (failed,
// or queued again after a failed attempt) among those written since a time.
// Each count reads an index of the few rows in question, not the history.
type OutboxStats struct {
	Queued       map[portal.Channel]int64
	OldestQueued *time.Time
	Failing      int64
}

// OutboxStats counts the outbox, in one round trip; Failing counts messages
// written since.
func (s *Store) OutboxStats(ctx context.Context, since time.Time) (OutboxStats, error) {
	st := OutboxStats{Queued: map[portal.Channel]int64{}}
	b := &pgx.Batch{}
	b.Queue(`SELECT channel, count(*) FROM messages WHERE status = 'queued' GROUP BY channel`).
		Query(func(rows pgx.Rows) error {
			var (
				ch portal.Channel
				n  int64
			)
			_, err := pgx.ForEachRow(rows, []any{&ch, &n}, func() error { st.Queued[ch] = n; return nil })
			return err
		})
	b.Queue(`SELECT min(queued_at) FROM messages WHERE status = 'queued'`).
		QueryRow(func(row pgx.Row) error { return row.Scan(&st.OldestQueued) })
	b.Queue(`SELECT count(*) FROM messages
		WHERE created_at >= $1 AND (status = 'failed' OR (status = 'queued' AND last_error <> ''))`, since).
		QueryRow(func(row pgx.Row) error { return row.Scan(&st.Failing) })
	err := s.db.SendBatch(ctx, b).Close()
	return st, mapErr("outbox stats", err)
}

// StaffCounts returns, in one statement, how many requests are pending and
// how many messages written since are failing: the staff navigation's
// numbers.
func (s *Store) StaffCounts(ctx context.Context, since time.Time) (pending, failing int64, err error) {
	err = s.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM requests WHERE status = 'pending'),
		(SELECT count(*) FROM messages
			WHERE created_at >= $1 AND (status = 'failed' OR (status = 'queued' AND last_error <> '')))`,
		since).Scan(&pending, &failing)
	return pending, failing, mapErr("staff counts", err)
}
