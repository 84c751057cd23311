-- Reference PostgreSQL DDL of migration 0011: an index for a scope's newest trades (the
-- dashboard's trade list, newest first by entry time). Apply after 010_candle_catalog.sql;
-- tests/test_migrations.py proves that the files build the same schema as `iftb-db upgrade`
-- (pg_dump --schema-only).

BEGIN;

CREATE INDEX ix_trades_scope_entry_time_id ON trades (bot, mode, entry_time, id) WHERE run_id IS NULL;

CREATE INDEX ix_trades_run_entry_time_id ON trades (run_id, entry_time, id) WHERE run_id IS NOT NULL;

COMMIT;
