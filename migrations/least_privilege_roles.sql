-- Least-privilege roles for iftb on PostgreSQL (see docs/security.md).
--
-- Run once per database as a superuser (or a role with CREATEROLE), in the bot's database:
--   psql -v owner_password="$OWNER_PW" -v bot_password="$BOT_PW" -d iftb -f least_privilege_roles.sql
-- Add -v reader_password="$READER_PW" to create iftb_reader too: the read-only role the dashboard
-- (`iftb-db serve`, docs/dashboard.md) logs in as.
--
-- iftb_owner owns the schema, runs the migrations (`iftb-db upgrade`) and the maintenance jobs
-- (audit retention); the bot logs in as iftb_bot, which can read, append and update rows but
-- cannot delete history or create, alter or drop anything (docs/security.md has the full table).
-- Nothing is granted to PUBLIC.

CREATE ROLE iftb_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE iftb_bot LOGIN PASSWORD :'bot_password';

-- Only the named roles may connect; the bot may use temporary tables (the bulk upsert stages
-- rows in one) but has no CREATE on the database or the schema.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO iftb_owner, iftb_bot', current_database()) \gexec
SELECT format('GRANT CREATE ON DATABASE %I TO iftb_owner', current_database()) \gexec

\set schema_rights 'REVOKE ALL ON SCHEMA public FROM PUBLIC; ALTER SCHEMA public OWNER TO iftb_owner; GRANT USAGE ON SCHEMA public TO iftb_bot'
:schema_rights;

-- On Citus the roles and the database grants above reach the workers by themselves; the schema's
-- do not, and the migrations create functions and shards there as iftb_owner: give each worker's
-- schema the same rights (`iftb-db distribute` does it again for workers added later).
SELECT format(
    'DO $do$ DECLARE refused record; BEGIN '
    'FOR refused IN SELECT * FROM pg_catalog.run_command_on_workers(%L) WHERE NOT success LOOP '
    'RAISE EXCEPTION ''worker %%:%%: %%'', refused.nodename, refused.nodeport, refused.result; '
    'END LOOP; END $do$', 'SET citus.enable_ddl_propagation TO off; ' || :'schema_rights')
WHERE EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') \gexec

-- Every table and sequence the owner creates from now on (i.e. by the migrations) is usable by
-- the bot to read, append and update rows, never to delete them: the journal and the audit log
-- are history. Deleting is granted table by table where the bot needs it (candles: migration
-- 0004); audit retention runs as iftb_owner.
ALTER DEFAULT PRIVILEGES FOR ROLE iftb_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO iftb_bot;
ALTER DEFAULT PRIVILEGES FOR ROLE iftb_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO iftb_bot;
-- The candle partition functions (SECURITY DEFINER, revoked from PUBLIC by migrations 0002/0004):
-- the bot creates next month's partition and applies retention through them, never by DDL.
ALTER DEFAULT PRIVILEGES FOR ROLE iftb_owner IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO iftb_bot;

-- The dashboard's role (only with -v reader_password=...): it connects and reads every table,
-- those that exist and those the owner's migrations create later, and nothing else — no writes,
-- no temporary tables, no functions of the bot.
\if :{?reader_password}
CREATE ROLE iftb_reader LOGIN PASSWORD :'reader_password';
SELECT format('GRANT CONNECT ON DATABASE %I TO iftb_reader', current_database()) \gexec
\set reader_rights 'GRANT USAGE ON SCHEMA public TO iftb_reader'
:reader_rights;
SELECT format(
    'DO $do$ DECLARE refused record; BEGIN '
    'FOR refused IN SELECT * FROM pg_catalog.run_command_on_workers(%L) WHERE NOT success LOOP '
    'RAISE EXCEPTION ''worker %%:%%: %%'', refused.nodename, refused.nodeport, refused.result; '
    'END LOOP; END $do$', 'SET citus.enable_ddl_propagation TO off; ' || :'reader_rights')
WHERE EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') \gexec
GRANT SELECT ON ALL TABLES IN SCHEMA public TO iftb_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE iftb_owner IN SCHEMA public
    GRANT SELECT ON TABLES TO iftb_reader;
\endif
