-- Reference PostgreSQL DDL of migration 0009: indexes for the ledger's lookups, per scope (a
-- trade's orders; every position of one side of a symbol). Apply after
-- 008_price_types_and_funding_rates.sql; tests/test_migrations.py proves that the files build
-- the same schema as `iftb-db upgrade` (pg_dump --schema-only).

BEGIN;

CREATE INDEX ix_orders_scope_trade_id ON orders (bot, mode, trade_id) WHERE run_id IS NULL;

CREATE INDEX ix_orders_run_trade_id ON orders (run_id, trade_id) WHERE run_id IS NOT NULL;

CREATE INDEX ix_positions_scope_symbol_exchange_side ON positions (bot, mode, symbol, exchange, side) WHERE run_id IS NULL;

CREATE INDEX ix_positions_run_symbol_exchange_side ON positions (run_id, symbol, exchange, side) WHERE run_id IS NOT NULL;

COMMIT;

