-- Publication of active credentials to each cluster's Prometheus: a sync
-- token per cluster, a notification whenever a cluster's credentials change,
-- and the expiry reminders that are due.

-- +goose Up
-- The SHA-256 of the cluster's sync token; the token itself is shown once.
ALTER TABLE clusters
    ADD COLUMN sync_token_hash       bytea CHECK (octet_length(sync_token_hash) = 32),
    ADD COLUMN sync_token_created_at timestamptz;

-- Every change to a credential wakes the agents of its cluster, on every
-- replica, when the change commits.
-- +goose StatementBegin
CREATE FUNCTION credentials_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('credentials_changed', NEW.cluster_id::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER credentials_notify AFTER INSERT OR UPDATE OF revoked_at, expires_at ON credentials
    FOR EACH ROW EXECUTE FUNCTION credentials_notify();

-- Reminders that a credential is about to expire, recorded once each when
-- due; delivering them is a separate concern.
CREATE TABLE credential_reminders (
    credential_id bigint      NOT NULL REFERENCES credentials (id),
    days_before   integer     NOT NULL CHECK (days_before > 0),
    due_at        timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    PRIMARY KEY (credential_id, days_before)
);

-- Staff look at revocations newest first.
CREATE INDEX credentials_revoked_idx ON credentials (revoked_at DESC) WHERE revoked_at IS NOT NULL;

-- +goose Down
DROP INDEX credentials_revoked_idx;
DROP TABLE credential_reminders;
DROP TRIGGER credentials_notify ON credentials;
DROP FUNCTION credentials_notify();
ALTER TABLE clusters DROP COLUMN sync_token_created_at, DROP COLUMN sync_token_hash;
