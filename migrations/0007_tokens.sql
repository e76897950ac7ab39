-- Personal access tokens: scripts and bots calling the JSON API as a person.
--
-- A token is shown once, at its creation; the table keeps only its SHA-256
-- (token_hash), so what the database holds, or a backup of it, opens
-- nothing. The token is 160 random bits, so a fast hash is enough: nobody can
-- search for a token that has a given hash.
--
-- scopes are what the token may do on top of who its owner is: the owner's
-- role is read at every use, so a person who leaves the staff takes their
-- tokens' decide and admin with them at once. A token is active while it is
-- neither revoked nor past expires_at; revoked tokens stay, so that the
-- audit log's token ids keep naming something the owner can see.

-- +goose Up
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash   bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    scopes       text[]      NOT NULL CHECK (cardinality(scopes) > 0
                                 AND scopes <@ ARRAY['read', 'request', 'decide', 'admin']::text[]),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    last_used_ip text        NOT NULL DEFAULT '' CHECK (octet_length(last_used_ip) <= 256),
    revoked_at   timestamptz,
    revoked_by   bigint      REFERENCES users (id) ON DELETE SET NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at DESC);

-- +goose Down
DROP TABLE api_tokens;
