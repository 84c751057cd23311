-- Reference PostgreSQL DDL of migration 0005: candle retention (whole partitions dropped, the
-- remaining rows deleted) in one SECURITY DEFINER function, so that one role does both (on Citus a
-- distributed table may not be changed by two users in one transaction). Whoever may run
-- iftb_drop_ohlcv_partitions may run it.
-- Apply after 004_*.sql; tests/test_migrations.py proves that the files build the same schema as
-- `iftb-db upgrade`.

BEGIN;

CREATE FUNCTION public.iftb_delete_ohlcv(
    rows_from timestamptz, rows_to timestamptz, partitions_to timestamptz,
    only_symbol text DEFAULT NULL, only_exchange text DEFAULT NULL,
    only_timeframe text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dropped bigint;
    deleted bigint;
BEGIN
    -- Partitions wholly inside [rows_from, partitions_to] (holding only the one series, when
    -- one is named) go whole; what is left of [rows_from, rows_to] is deleted row by row.
    dropped := public.iftb_drop_ohlcv_partitions(
        rows_from, partitions_to, only_symbol, only_exchange, only_timeframe);
    DELETE FROM public.ohlcv
    WHERE "timestamp" BETWEEN rows_from AND rows_to
      AND (only_symbol IS NULL
           OR (symbol = only_symbol AND exchange = only_exchange AND timeframe = only_timeframe));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN dropped + deleted;
END $$;

REVOKE EXECUTE ON FUNCTION public.iftb_delete_ohlcv(timestamptz, timestamptz, timestamptz, text, text, text) FROM PUBLIC;

DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT a.grantee::pg_catalog.regrole::text
        FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        WHERE p.oid = 'public.iftb_drop_ohlcv_partitions(timestamptz, timestamptz, text, text, text)'::pg_catalog.regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee NOT IN (0, p.proowner)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION public.iftb_delete_ohlcv(timestamptz, timestamptz, timestamptz, text, text, text) TO %s', grantee);
    END LOOP;
END $$;

COMMIT;
