-- Reference PostgreSQL DDL of migration 0003: optimistic versions on trades and positions, and
-- ratio columns wide enough for every value the layer computes. Apply after
-- 002_partitioned_ohlcv.sql; tests/test_migrations.py proves that the files build the same
-- schema as `iftb-db upgrade` (pg_dump --schema-only).

BEGIN;

-- Every repository update is conditional on the version the caller read, and bumps it.
ALTER TABLE trades ADD COLUMN version INTEGER DEFAULT 1 NOT NULL;
ALTER TABLE positions ADD COLUMN version INTEGER DEFAULT 1 NOT NULL;

-- A column a view reads cannot change type: set the views aside around the change. They come
-- back with whole minutes rounded half up (0001's CAST rounded here but truncated on SQLite).
DROP VIEW v_active_positions;
DROP VIEW v_recent_trades;

ALTER TABLE trades ALTER COLUMN realized_pnl_pct TYPE NUMERIC(20, 4);
ALTER TABLE positions ALTER COLUMN unrealized_pnl_pct TYPE NUMERIC(20, 4);
ALTER TABLE daily_performance ALTER COLUMN net_pnl_pct TYPE NUMERIC(20, 4);
ALTER TABLE daily_performance ALTER COLUMN max_drawdown TYPE NUMERIC(20, 4);
ALTER TABLE daily_performance ALTER COLUMN sharpe_ratio TYPE NUMERIC(20, 4);
ALTER TABLE daily_performance ALTER COLUMN profit_factor TYPE NUMERIC(20, 4);

CREATE VIEW v_active_positions AS
SELECT
    p.id, p.symbol, p.exchange, p.side, p.entry_price, p.quantity, p.leverage, p.margin,
    p.current_price, p.unrealized_pnl, p.unrealized_pnl_pct, p.liquidation_price, p.stop_loss, p.take_profit, p.trailing_stop,
    p.trade_id, p.entry_time, p.last_updated,
    t.signal_score, t.technical_score, t.llm_score, t.xgb_confidence,
    CAST(round(EXTRACT(EPOCH FROM (statement_timestamp() - p.entry_time)) / 60) AS INTEGER) AS minutes_held
FROM positions p
LEFT JOIN trades t ON t.trade_id = p.trade_id
WHERE p.status = 'open';

CREATE VIEW v_recent_trades AS
SELECT
    t.id, t.trade_id, t.symbol, t.exchange, t.side, t.action, t.entry_price, t.exit_price,
    t.quantity, t.leverage, t.realized_pnl, t.realized_pnl_pct, t.fee,
    t.entry_time, t.exit_time,
    CAST(round(EXTRACT(EPOCH FROM (t.exit_time - t.entry_time)) / 60) AS INTEGER) AS duration_minutes
FROM trades t
WHERE t.action <> 'open' AND t.exit_time IS NOT NULL
ORDER BY t.exit_time DESC
LIMIT 100;

COMMIT;
