-- Reference PostgreSQL DDL of migration 0005: candle retention (whole partitions dropped, the
-- remaining rows deleted) in one SECURITY DEFINER function, so that one role does both (on Citus a
-- distributed table may not be changed by two users in one transaction); whoever may run
-- iftb_drop_ohlcv_partitions may run it. iftb_drop_ohlcv_partitions tells series apart with
-- IS DISTINCT FROM (with <>, a NULL exchange or timeframe made a mixed partition look unmixed).
-- Apply after 004_*.sql; tests/test_migrations.py proves that the files build the same schema as
-- `iftb-db upgrade`.

BEGIN;

CREATE OR REPLACE FUNCTION public.iftb_drop_ohlcv_partitions(
    range_start timestamptz, range_end timestamptz, only_symbol text DEFAULT NULL,
    only_exchange text DEFAULT NULL, only_timeframe text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part record;
    removed bigint := 0;
    held bigint;
    mixed boolean;
BEGIN
    FOR part IN SELECT * FROM public.iftb_ohlcv_partitions() LOOP
        -- whole partition inside [range_start, range_end] (candle open times, end inclusive);
        -- a partition whose bounds are unknown is not inside
        CONTINUE WHEN (part.lower_bound >= range_start
                       AND part.upper_bound <= range_end + interval '1 microsecond') IS NOT TRUE;
        IF NOT public.iftb_is_ohlcv_partition(part.name) THEN
            RAISE EXCEPTION 'iftb_drop_ohlcv_partitions: % is not a partition of public.ohlcv',
                part.name;
        END IF;
        IF only_symbol IS NOT NULL THEN
            EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE (symbol, exchange, timeframe) '
                                      'IS DISTINCT FROM ($1, $2, $3))', part.name)
                INTO mixed USING only_symbol, only_exchange, only_timeframe;
            CONTINUE WHEN mixed;  -- other series live there too: delete rows instead
        END IF;
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', part.name) INTO held;
        EXECUTE pg_catalog.format('DROP TABLE %s', part.name);
        removed := removed + held;
    END LOOP;
    RETURN removed;
END $$;

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
