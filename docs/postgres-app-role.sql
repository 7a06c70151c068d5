-- PostgreSQL: run the app as a role that cannot change or remove audit events (SPEC §18, docs/deploy.md).
--
-- Two roles: the OWNER (owns the database and every table; runs `manage.py migrate`) and the APP role
-- (the web server and the workers): LOGIN, NOSUPERUSER, owns nothing. Only an owner or a superuser can
-- drop or disable the audit triggers (ALTER TABLE … DISABLE TRIGGER, DROP TRIGGER) or switch them off
-- with session_replication_role; the app role can do neither, and is granted no UPDATE on the audit
-- table but of the three seal columns, which the trigger lets it set once per event.
--
-- Once, as a superuser:
--   CREATE ROLE hitl_owner LOGIN PASSWORD '…';
--   CREATE ROLE hitl_app LOGIN PASSWORD '…' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
--   CREATE DATABASE hitl OWNER hitl_owner;
-- Then `DATABASE_URL=postgres://hitl_owner:…@db/hitl manage.py migrate`, and this file, as hitl_owner,
-- after EVERY migrate (new tables need their grants):
--   psql "postgres://hitl_owner:…@db/hitl" -v ON_ERROR_STOP=1 -f docs/postgres-app-role.sql
-- The app runs with DATABASE_URL=postgres://hitl_app:…@db/hitl.
-- (tests/audit/log/test_postgres_role.py runs this file with the role names replaced.)

GRANT USAGE ON SCHEMA public TO hitl_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hitl_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO hitl_app;

-- The audit log: read and append; update only the seal columns (the sealer); never delete or truncate.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent FROM hitl_app;
GRANT UPDATE (seq, prev_hash, hash) ON audit_auditevent TO hitl_app;
