-- Reference PostgreSQL DDL of migration 0010: the candle catalog. One row per stored candle
-- series (first and last open time, candles stored and missing, runs of missing candles) and one
-- per run of missing candles, kept exact by every candle write of the library. Apply after
-- 009_ledger_lookup_indexes.sql; tests/test_migrations.py proves that the files build the same
-- schema as `iftb-db upgrade` (pg_dump --schema-only). On a database that already holds candles,
-- fill the catalog afterwards with `iftb-db catalog rebuild` (the migration itself does).

BEGIN;

CREATE TABLE candle_series (
    symbol VARCHAR(20) NOT NULL,
    exchange VARCHAR(50) NOT NULL,
    timeframe VARCHAR(10) NOT NULL,
    price_type VARCHAR(16) NOT NULL,
    first_open TIMESTAMP WITH TIME ZONE NOT NULL,
    last_open TIMESTAMP WITH TIME ZONE NOT NULL,
    candle_count BIGINT NOT NULL,
    missing_count BIGINT NOT NULL,
    gap_count BIGINT NOT NULL,
    CONSTRAINT pk_candle_series PRIMARY KEY (symbol, exchange, timeframe, price_type),
    CONSTRAINT ck_candle_series_price_type CHECK (price_type IN ('trade', 'mark', 'index', 'premium_index')),
    CONSTRAINT ck_candle_series_span CHECK (first_open <= last_open),
    CONSTRAINT ck_candle_series_counts CHECK (candle_count > 0 AND missing_count >= 0 AND gap_count >= 0)
);

CREATE TABLE candle_gaps (
    symbol VARCHAR(20) NOT NULL,
    exchange VARCHAR(50) NOT NULL,
    timeframe VARCHAR(10) NOT NULL,
    price_type VARCHAR(16) NOT NULL,
    first_missing TIMESTAMP WITH TIME ZONE NOT NULL,
    last_missing TIMESTAMP WITH TIME ZONE NOT NULL,
    missing BIGINT NOT NULL,
    CONSTRAINT pk_candle_gaps PRIMARY KEY (symbol, exchange, timeframe, price_type, first_missing),
    CONSTRAINT ck_candle_gaps_run CHECK (first_missing <= last_missing AND missing > 0)
);

-- The catalog is not history: whoever may write candles keeps it, and deleting candles deletes
-- their catalog rows.
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::pg_catalog.regrole::text
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = 'public.ohlcv'::pg_catalog.regclass
          AND a.privilege_type = 'INSERT' AND a.grantee NOT IN (0, c.relowner)
    LOOP
        EXECUTE pg_catalog.format(
            'GRANT DELETE ON public.candle_series, public.candle_gaps TO %s', grantee);
    END LOOP;
END $$;

COMMIT;
