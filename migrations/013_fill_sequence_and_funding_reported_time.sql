-- Reference PostgreSQL DDL of migration 0013: a fill's place in the exchange's own sequence,
-- and the time the exchange reported for a funding payment when it was not exactly the funding
-- boundary it settles. Apply after 012_journal_scopes.sql; tests/test_migrations.py proves that
-- the files build the same schema as `iftb-db upgrade` (pg_dump --schema-only).

BEGIN;

ALTER TABLE fills ADD COLUMN sequence BIGINT;

ALTER TABLE funding_payments ADD COLUMN reported_time TIMESTAMP WITH TIME ZONE;

COMMIT;
