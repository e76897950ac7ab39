-- Indexes for the keyset pages of every list that grows with history.
--
-- Each page reads its rows in index order, starting strictly after the
-- previous page's last (time, id), and stops after one row more than the
-- page: so a page costs the same with a thousand rows of history as with a
-- million. The time of each order never changes once set (a revocation's
-- time, an issuance, a creation), and the id breaks ties, so a page does not
-- shift when rows arrive. The per-user indexes gain the id, replacing the
-- ones of 0001, 0002 and 0007 that ended at the time.

-- +goose Up
DROP INDEX credentials_revoked_idx;
CREATE INDEX credentials_revoked_idx ON credentials (revoked_at DESC, id DESC) WHERE revoked_at IS NOT NULL;

DROP INDEX credentials_user_idx;
CREATE INDEX credentials_user_idx ON credentials (user_id, issued_at DESC, id DESC);

DROP INDEX requests_user_idx;
CREATE INDEX requests_user_idx ON requests (user_id, created_at DESC, id DESC);
-- Decided requests by status, newest first; the queue (pending, oldest
-- first) has requests_queue_idx.
CREATE INDEX requests_status_idx ON requests (status, created_at DESC, id DESC) WHERE status <> 'pending';

DROP INDEX api_tokens_user_idx;
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at DESC, id DESC);

-- A person's sessions, the latest sign-in first; the people, the newest
-- first. Both orders are of times that never change, unlike the last time
-- seen or signed in.
CREATE INDEX user_sessions_signed_in_idx ON user_sessions (user_id, created_at DESC, id DESC);
CREATE INDEX users_created_idx ON users (created_at DESC, id DESC);

-- +goose Down
DROP INDEX users_created_idx;
DROP INDEX user_sessions_signed_in_idx;
DROP INDEX api_tokens_user_idx;
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at DESC);
DROP INDEX requests_status_idx;
DROP INDEX requests_user_idx;
CREATE INDEX requests_user_idx ON requests (user_id, created_at DESC);
DROP INDEX credentials_user_idx;
CREATE INDEX credentials_user_idx ON credentials (user_id, issued_at DESC);
DROP INDEX credentials_revoked_idx;
CREATE INDEX credentials_revoked_idx ON credentials (revoked_at DESC) WHERE revoked_at IS NOT NULL;
