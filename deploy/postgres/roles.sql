-- The credential portal's database and roles. Run once, as a role that may
-- create roles and databases (psql -v owner_password=… -v portal_password=…
-- -f roles.sql), before the first `portal migrate up`.
--
--   portal_owner  owns the schema and runs the migrations (the Helm chart's
--                 migrations.databaseURL); nothing else connects as it.
--   portal        the portal's replicas (DATABASE_URL). It reads and writes
--                 the tables, but owns none: it cannot alter the schema, drop
--                 the audit log's triggers, or change or delete an audit event.
CREATE ROLE portal_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE portal LOGIN PASSWORD :'portal_password';
CREATE DATABASE portal OWNER portal_owner;
\connect portal
-- PostgreSQL 15 and later no longer let every role create in public; say so
-- for older servers too. The owner creates, the portal uses.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO portal_owner;
GRANT USAGE ON SCHEMA public TO portal;
