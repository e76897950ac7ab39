-- Notifications that let each replica keep the sessions it opened: a
-- replica may answer a signed-in request from the session and person it
-- read less than a minute ago, and drops them when told, whichever replica
-- (or person at a psql prompt) made the change. The payload is
-- 's:' || the session's key when a live session is written or deleted, or
-- its record deleted; 'u:' || the person's id when a person changes (their
-- role, their email).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION sessions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        PERFORM pg_notify('sessions_changed', 'u:' || NEW.id);
    ELSIF TG_TABLE_NAME = 'user_sessions' THEN
        PERFORM pg_notify('sessions_changed', 's:' || OLD.token_hash);
    ELSIF OLD.expiry > now() THEN -- sessions: an expired one is open nowhere
        PERFORM pg_notify('sessions_changed', 's:' || OLD.token);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER sessions_notify AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_notify();
CREATE TRIGGER sessions_notify AFTER DELETE ON user_sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_notify();
-- Not at every sign-in: only when what a session carries changes.
CREATE TRIGGER sessions_notify AFTER UPDATE OF email, email_verified, name, groups, role ON users
    FOR EACH ROW
    WHEN ((OLD.email, OLD.email_verified, OLD.name, OLD.groups, OLD.role)
          IS DISTINCT FROM (NEW.email, NEW.email_verified, NEW.name, NEW.groups, NEW.role))
    EXECUTE FUNCTION sessions_notify();

-- +goose Down
DROP TRIGGER sessions_notify ON users;
DROP TRIGGER sessions_notify ON user_sessions;
DROP TRIGGER sessions_notify ON sessions;
DROP FUNCTION sessions_notify();
