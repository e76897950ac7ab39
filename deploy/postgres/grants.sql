-- The portal role's privileges. Run as portal_owner after every
-- `portal migrate up` (psql "$MIGRATIONS_DATABASE_URL" -f grants.sql); it may
-- be run any number of times.
GRANT USAGE ON SCHEMA public TO portal;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO portal;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO portal;
-- Tables and sequences later migrations add get the same, without waiting
-- for this file to be run again.
ALTER DEFAULT PRIVILEGES FOR ROLE portal_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO portal;
ALTER DEFAULT PRIVILEGES FOR ROLE portal_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO portal;
-- The audit log is append-only for the portal: it adds events and reads
-- them, and can neither change nor remove one. Its triggers refuse that too,
-- but only a role that does not own the table cannot drop them.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM portal;
-- The record of applied migrations is the owner's to write.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON goose_db_version FROM portal;
