-- The outbox: every message someone must hear of is written here in the
-- transaction of the action it tells of, and delivered afterwards by a worker
-- on any replica. And requests that wait too long expire.
--
-- A message is rendered when it is written (subject, plain text, HTML), so
-- it says what was true when the action happened, and the staff page shows
-- exactly what was sent. It names its recipient: one row per address, plus
-- one for the staff webhook. A message with no channel to go by is kept as
-- "unsent", so staff can see what people would have been told.
--
-- Claiming a message moves its next_attempt_at a lease ahead: a replica that
-- dies holding it lets the lease run out, and another replica delivers it.

-- +goose Up
CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    event           text        NOT NULL,                       -- the audit action it tells of
    audience        text        NOT NULL CHECK (audience IN ('staff', 'customer')),
    user_id         bigint      REFERENCES users (id),          -- the customer told
    channel         text        NOT NULL CHECK (channel IN ('email', 'webhook', 'none')),
    recipient       text        NOT NULL DEFAULT '',            -- an email address; '' for the webhook
    subject         text        NOT NULL CHECK (subject <> ''),
    body_text       text        NOT NULL,
    body_html       text        NOT NULL DEFAULT '',
    link            text        NOT NULL DEFAULT '',            -- the page it points at, absolute
    status          text        NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'failed', 'unsent')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    queued_at       timestamptz NOT NULL DEFAULT now(),        -- when retries began: written or retried
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    sent_at         timestamptz,
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CHECK (channel <> 'none' OR status = 'unsent'),
    CHECK (channel <> 'email' OR recipient <> '')
);
-- What the workers claim: due messages, oldest due first.
CREATE INDEX messages_due_idx ON messages (next_attempt_at, id) WHERE status = 'queued';
-- The staff page, newest first by status (all of them: the primary key).
CREATE INDEX messages_status_idx ON messages (status, id DESC);

-- Wake the workers of every replica when messages are written.
-- +goose StatementBegin
CREATE FUNCTION messages_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('messages_queued', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER messages_notify AFTER INSERT ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION messages_notify();

-- A request left unanswered expires: decided, by no one.
ALTER TABLE requests DROP CONSTRAINT requests_status_check;
ALTER TABLE requests ADD CONSTRAINT requests_status_check
    CHECK (status IN ('pending', 'approved', 'denied', 'cancelled', 'expired'));
ALTER TABLE requests DROP CONSTRAINT requests_check1;
ALTER TABLE requests ADD CONSTRAINT requests_decided_by_check
    CHECK (CASE status WHEN 'pending' THEN decided_by IS NULL
                       WHEN 'expired' THEN decided_by IS NULL
                       ELSE decided_by IS NOT NULL END);

-- +goose Down
ALTER TABLE requests DROP CONSTRAINT requests_decided_by_check;
UPDATE requests SET status = 'cancelled', decided_by = user_id WHERE status = 'expired';
ALTER TABLE requests ADD CONSTRAINT requests_check1 CHECK ((status = 'pending') = (decided_by IS NULL));
ALTER TABLE requests DROP CONSTRAINT requests_status_check;
ALTER TABLE requests ADD CONSTRAINT requests_status_check
    CHECK (status IN ('pending', 'approved', 'denied', 'cancelled'));
DROP TABLE messages;
DROP FUNCTION messages_notify();
