-- Notifications that let each replica keep the API tokens it checked, as
-- it keeps sessions (migration 0010): the payload is 't:' || the token's
-- hash in hex when a token is revoked, deleted, or changes what it grants.
-- A use, which notes when and from where the token was last used, is not a
-- change. Its owner's changes are notified as 'u:' || their id already.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sessions_changed', 't:' || encode(OLD.token_hash, 'hex'));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER tokens_notify AFTER UPDATE OF revoked_at, expires_at, scopes, user_id, token_hash OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_notify();

-- +goose Down
DROP TRIGGER tokens_notify ON api_tokens;
DROP FUNCTION tokens_notify();
