-- A notification that lets each replica keep the list of open clusters the
-- request form offers, rather than read it at every view of the form: any
-- statement that adds, changes or removes clusters, from any replica, the
-- clusters file's import or a psql prompt, notifies 'clusters_changed'
-- once, and every replica drops its list.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION clusters_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('clusters_changed', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER clusters_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON clusters
    FOR EACH STATEMENT EXECUTE FUNCTION clusters_notify();

-- +goose Down
DROP TRIGGER clusters_notify ON clusters;
DROP FUNCTION clusters_notify();
