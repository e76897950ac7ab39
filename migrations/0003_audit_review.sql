-- Audit review: indexes for the staff filters, each ending in the page order
-- (at DESC, id DESC) so that a filtered page is one index range read newest
-- first and keyset pagination stays a range read; and the results of chain
-- verifications, so that the audit page can show the last verified head
-- without walking the whole chain at every view.
--
-- Free text in details is an ILIKE on details::text without an index of its
-- own: a trigram index needs the pg_trgm extension, which not every
-- deployment's role may create. Combined with any other filter the indexes
-- above narrow it down first.

-- +goose Up
-- Actors are searched case-insensitively, by whole address or by prefix;
-- text_pattern_ops lets LIKE 'prefix%' use the index whatever the collation.
CREATE INDEX audit_events_actor_idx ON audit_events (lower(actor) text_pattern_ops, at DESC, id DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, at DESC, id DESC);
CREATE INDEX audit_events_cluster_idx ON audit_events (cluster_id, at DESC, id DESC) WHERE cluster_id IS NOT NULL;
CREATE INDEX audit_events_subject_idx ON audit_events (subject_type, subject_id, at DESC, id DESC) WHERE subject_id IS NOT NULL;

-- Unlike audit_events this table is not append-only: it is a cache of what
-- the last walks of the chain found, and the chain itself is the evidence.
CREATE TABLE audit_verifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    verified_at timestamptz NOT NULL DEFAULT now(),
    verified_by text        NOT NULL,           -- "portal audit verify" or a staff member's email
    since_id    bigint      NOT NULL DEFAULT 0, -- the walk trusted this event and started after it
    events      bigint      NOT NULL CHECK (events >= 0),
    head_id     bigint      NOT NULL DEFAULT 0, -- the last event that checked out; 0 for none
    head_hash   bytea,
    took        interval    NOT NULL,
    ok          boolean     NOT NULL,
    broken_id   bigint,                         -- the first event that did not check out
    broken_at   timestamptz,
    problem     text        NOT NULL DEFAULT '',
    CHECK (ok = (broken_id IS NULL))
);

-- +goose Down
DROP TABLE audit_verifications;
DROP INDEX audit_events_subject_idx;
DROP INDEX audit_events_cluster_idx;
DROP INDEX audit_events_action_idx;
DROP INDEX audit_events_actor_idx;
