-- Sessions keyed by a hash, and findable by the person they sign in.
--
-- The sessions table (scs's pgxstore) held each browser's session token as
-- its key: anyone who could read the database, or a backup of it, could take
-- over a signed-in session. From now on its token column holds only the
-- SHA-256 of the token (base64url, as store.SessionKey computes it), so what
-- the database holds opens nothing.
--
-- The rows so far are deleted, not rewritten: everyone signs in once more.
-- A rewritten row would still be opened by every token copied out of a
-- backup taken before this migration, until it expired; and it could not be
-- given a user_sessions row (its user is inside scs's gob-encoded data, which
-- SQL cannot read), so it would be a signed-in session that nobody can list
-- or end. Signing in again is one visit to the identity provider.
--
-- user_sessions records each signed-in session: whose it is, when it began,
-- when and from where it was last seen. A session is signed in only while its
-- row exists, so deleting the row (staff ending a person's sessions, someone
-- signing out everywhere) signs the browser out at its next request. The row
-- goes with its session's: the background loop that deletes expired sessions
-- deletes their rows too (ON DELETE CASCADE).

-- +goose Up
DELETE FROM sessions;

CREATE TABLE user_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash   text        NOT NULL UNIQUE REFERENCES sessions (token) ON DELETE CASCADE,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    ip           text        NOT NULL DEFAULT '' CHECK (octet_length(ip) <= 256),
    user_agent   text        NOT NULL DEFAULT '' CHECK (octet_length(user_agent) <= 2048)
);
CREATE INDEX user_sessions_user_idx ON user_sessions (user_id, last_seen_at DESC);

-- +goose Down
DROP TABLE user_sessions;
-- Hashed keys mean nothing to a portal that looks tokens up as they are.
DELETE FROM sessions;
