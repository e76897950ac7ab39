-- The portal's first schema: people, clusters, requests, the credentials issued
-- for them, the audit log, and the server-side sessions of signed-in browsers.

-- +goose Up
CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issuer         text        NOT NULL CHECK (issuer <> ''),
    subject        text        NOT NULL CHECK (subject <> ''),
    email          text        NOT NULL DEFAULT '',
    email_verified boolean     NOT NULL DEFAULT false,
    name           text        NOT NULL DEFAULT '',
    groups         text[]      NOT NULL DEFAULT '{}',
    role           text        NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'staff')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz,
    UNIQUE (issuer, subject)
);
CREATE INDEX users_email_idx ON users (lower(email));

-- Sessions as github.com/alexedwards/scs/pgxstore expects them.
CREATE TABLE sessions (
    token  text        PRIMARY KEY,
    data   bytea       NOT NULL,
    expiry timestamptz NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);

CREATE TABLE clusters (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text        NOT NULL UNIQUE
                        CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    display_name        text        NOT NULL DEFAULT '',
    prometheus_url      text        NOT NULL CHECK (prometheus_url ~ '^https?://[^/]+'),
    credential_ttl_days integer     NOT NULL DEFAULT 90 CHECK (credential_ttl_days BETWEEN 1 AND 3650),
    note                text        NOT NULL DEFAULT '',
    enabled             boolean     NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE requests (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id),
    cluster_id      bigint      NOT NULL REFERENCES clusters (id),
    public_key      text        NOT NULL CHECK (octet_length(public_key) BETWEEN 1 AND 4096),
    key_type        text        NOT NULL,
    key_fingerprint text        NOT NULL,
    justification   text        NOT NULL CHECK (char_length(justification) BETWEEN 10 AND 2000),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'denied', 'cancelled')),
    decided_by      bigint      REFERENCES users (id),
    decided_at      timestamptz,
    decision_note   text        NOT NULL DEFAULT '',
    renews_credential_id bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A decision has a time and a decider; a pending request has neither.
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK ((status = 'pending') = (decided_by IS NULL)),
    -- Nobody approves or denies their own request.
    CHECK (status NOT IN ('approved', 'denied') OR decided_by <> user_id),
    CHECK (status <> 'denied' OR decision_note <> '')
);
-- One open request per customer and cluster.
CREATE UNIQUE INDEX requests_one_pending_idx ON requests (user_id, cluster_id) WHERE status = 'pending';
CREATE INDEX requests_queue_idx ON requests (created_at, id) WHERE status = 'pending';
CREATE INDEX requests_user_idx ON requests (user_id, created_at DESC);

CREATE TABLE credentials (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id       bigint      NOT NULL UNIQUE REFERENCES requests (id),
    user_id          bigint      NOT NULL REFERENCES users (id),
    cluster_id       bigint      NOT NULL REFERENCES clusters (id),
    username         text        NOT NULL CHECK (username ~ '^[a-z0-9-]{3,64}$'),
    password_hash    text        NOT NULL CHECK (password_hash ~ '^\$2[aby]\$'),
    ciphertext       bytea       NOT NULL CHECK (octet_length(ciphertext) > 0),
    key_fingerprint  text        NOT NULL,
    issued_at        timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    revoked_by       bigint      REFERENCES users (id),
    revoke_reason    text        NOT NULL DEFAULT '',
    compromised      boolean     NOT NULL DEFAULT false,
    download_count   integer     NOT NULL DEFAULT 0 CHECK (download_count >= 0),
    last_download_at timestamptz,
    UNIQUE (cluster_id, username),
    CHECK (expires_at > issued_at),
    CHECK (revoked_at IS NOT NULL OR (revoked_by IS NULL AND revoke_reason = '' AND NOT compromised))
);
-- What a cluster's Prometheus accepts: not revoked; expiry is checked by the query.
CREATE INDEX credentials_active_idx ON credentials (cluster_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX credentials_user_idx ON credentials (user_id, issued_at DESC);

ALTER TABLE requests ADD FOREIGN KEY (renews_credential_id) REFERENCES credentials (id);

CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor_id     bigint      REFERENCES users (id),
    actor        text        NOT NULL,
    action       text        NOT NULL,
    subject_type text        NOT NULL DEFAULT '',
    subject_id   bigint,
    cluster_id   bigint      REFERENCES clusters (id),
    details      jsonb       NOT NULL DEFAULT '{}',
    ip           text        NOT NULL DEFAULT '',
    user_agent   text        NOT NULL DEFAULT '',
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL UNIQUE
);
CREATE INDEX audit_events_at_idx ON audit_events (at DESC, id DESC);

-- The audit log is append-only, whatever the application does.
-- +goose StatementBegin
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- +goose Down
DROP TABLE audit_events;
DROP FUNCTION audit_events_refuse_change();
ALTER TABLE requests DROP COLUMN renews_credential_id;
DROP TABLE credentials;
DROP TABLE requests;
DROP TABLE clusters;
DROP TABLE sessions;
DROP TABLE users;
