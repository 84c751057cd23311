-- Reference PostgreSQL DDL of migration 0011: a scope's trades by entry time, all of them or one
-- symbol's (newest-first pages and their counts), replacing ix_trades_symbol_entry_time. Apply
-- after 010_candle_catalog.sql; tests/test_migrations.py proves that the files build the same
-- schema as `iftb-db upgrade` (pg_dump --schema-only).

BEGIN;

DROP INDEX ix_trades_symbol_entry_time;

DROP INDEX ix_trades_scope_exit_time;

CREATE INDEX ix_trades_scope_entry_time ON trades (bot, mode, entry_time, id) WHERE run_id IS NULL;

CREATE INDEX ix_trades_run_entry_time ON trades (run_id, bot, mode, entry_time, id) WHERE run_id IS NOT NULL;

CREATE INDEX ix_trades_scope_exit_time ON trades (bot, mode, exit_time, id) WHERE run_id IS NULL;

CREATE INDEX ix_trades_run_exit_time ON trades (run_id, bot, mode, exit_time, id) WHERE run_id IS NOT NULL;

CREATE INDEX ix_trades_scope_symbol_entry_time ON trades (bot, mode, symbol, entry_time, id) WHERE run_id IS NULL;

CREATE INDEX ix_trades_run_symbol_entry_time ON trades (run_id, bot, mode, symbol, entry_time, id) WHERE run_id IS NOT NULL;

COMMIT;
