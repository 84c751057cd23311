-- Reference PostgreSQL DDL of migration 0004: SECURITY DEFINER partition functions with a trusted
-- search_path (pg_catalog, then pg_temp last) and schema-qualified objects, that only ever touch
-- partitions of public.ohlcv; partitions created only for the months that hold rows; no role
-- but the owner may delete journal or audit rows, rewrite audit rows or write alembic_version
-- (docs/security.md).
-- Apply after 003_*.sql; tests/test_migrations.py proves that the files build the same schema as
-- `iftb-db upgrade`.

BEGIN;

CREATE FUNCTION public.iftb_is_ohlcv_partition(relation regclass)
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT FROM pg_catalog.pg_inherits i
        JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
        WHERE i.inhrelid = relation
          AND i.inhparent = 'public.ohlcv'::pg_catalog.regclass
          AND c.relispartition AND c.relkind = 'r')
$$;

CREATE OR REPLACE FUNCTION public.iftb_ohlcv_partitions()
RETURNS TABLE (name regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.oid::pg_catalog.regclass,
           pg_catalog.substring(bound, 'FROM \(''([^'']+)''\)')::pg_catalog.timestamptz,
           pg_catalog.substring(bound, 'TO \(''([^'']+)''\)')::pg_catalog.timestamptz
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid,
    LATERAL pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
    WHERE i.inhparent = 'public.ohlcv'::pg_catalog.regclass AND c.relispartition
    ORDER BY 2
$$;

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
            EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE symbol <> $1 '
                                      'OR exchange <> $2 OR timeframe <> $3)', part.name)
                INTO mixed USING only_symbol, only_exchange, only_timeframe;
            CONTINUE WHEN mixed;  -- other series live there too: delete rows instead
        END IF;
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', part.name) INTO held;
        EXECUTE pg_catalog.format('DROP TABLE %s', part.name);
        removed := removed + held;
    END LOOP;
    RETURN removed;
END $$;

CREATE FUNCTION public.iftb_ensure_ohlcv_partitions(open_times timestamptz[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bound timestamptz;
    partition_name text;
    existing regclass;
    created integer := 0;
    locked boolean := false;
BEGIN
    FOR bound IN
        SELECT DISTINCT pg_catalog.date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        FROM pg_catalog.unnest(open_times) AS t
        WHERE t IS NOT NULL
        ORDER BY 1
    LOOP
        -- A direct call may not fill the catalog: 1970 up to eleven years ahead (the longest
        -- `iftb-db partitions --ahead`), which also keeps every name at four-digit years.
        IF bound < '1970-01-01 00:00:00+00' OR bound > pg_catalog.statement_timestamp()
                                                      + interval '11 years' THEN
            RAISE EXCEPTION USING ERRCODE = '22008', MESSAGE = pg_catalog.format(
                'iftb_ensure_ohlcv_partitions: %s is outside 1970 to eleven years ahead', bound);
        END IF;
        partition_name := 'ohlcv_p' || pg_catalog.to_char(bound AT TIME ZONE 'UTC', 'YYYYMMDD');
        existing := pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(partition_name));
        IF existing IS NULL AND NOT locked THEN
            -- Only writers that must create one queue here: this lock conflicts with itself,
            -- not with reads or writes. Taking it also refreshes the catalog, so looking again
            -- sees a partition another writer has just committed.
            LOCK TABLE public.ohlcv IN SHARE UPDATE EXCLUSIVE MODE;
            locked := true;
            existing := pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(partition_name));
        END IF;
        IF existing IS NULL THEN
            EXECUTE pg_catalog.format(
                'CREATE TABLE public.%I (LIKE public.ohlcv INCLUDING DEFAULTS)', partition_name);
            EXECUTE pg_catalog.format('ALTER TABLE public.ohlcv ATTACH PARTITION public.%I '
                                      'FOR VALUES FROM (%L) TO (%L)',
                                      partition_name, bound, bound + interval '1 month');
            created := created + 1;
        ELSIF NOT public.iftb_is_ohlcv_partition(existing) THEN
            RAISE EXCEPTION 'iftb_ensure_ohlcv_partitions: % is not a partition of public.ohlcv',
                existing;
        END IF;
    END LOOP;
    RETURN created;
END $$;

REVOKE EXECUTE ON FUNCTION public.iftb_ensure_ohlcv_partitions(timestamptz[]) FROM PUBLIC;

DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT a.grantee::pg_catalog.regrole::text
        FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        WHERE p.oid = 'public.iftb_ensure_ohlcv_partitions(timestamptz, timestamptz)'::pg_catalog.regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee NOT IN (0, p.proowner)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION public.iftb_ensure_ohlcv_partitions(timestamptz[]) TO %s', grantee);
    END LOOP;
END $$;

DROP FUNCTION public.iftb_ensure_ohlcv_partitions(timestamptz, timestamptz);

DO $$
DECLARE
    entry record;
BEGIN
    FOR entry IN
        SELECT DISTINCT c.oid::pg_catalog.regclass AS relation,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                    ELSE a.grantee::pg_catalog.regrole::text END AS grantee,
               CASE WHEN c.oid = pg_catalog.to_regclass('public.alembic_version')
                    THEN 'INSERT, UPDATE, DELETE, TRUNCATE'
                    WHEN c.oid IN (pg_catalog.to_regclass('public.system_events'),
                                   pg_catalog.to_regclass('public.llm_analysis_log'))
                    THEN 'UPDATE, DELETE, TRUNCATE' ELSE 'DELETE, TRUNCATE' END AS rights
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.relnamespace = 'public'::pg_catalog.regnamespace
          AND c.oid <> 'public.ohlcv'::pg_catalog.regclass
          AND a.grantee <> c.relowner
          AND (a.privilege_type IN ('DELETE', 'TRUNCATE')
               OR (c.oid = pg_catalog.to_regclass('public.alembic_version')
                   AND a.privilege_type IN ('INSERT', 'UPDATE'))
               OR (c.oid IN (pg_catalog.to_regclass('public.system_events'),
                             pg_catalog.to_regclass('public.llm_analysis_log'))
                   AND a.privilege_type = 'UPDATE'))
    LOOP
        EXECUTE pg_catalog.format('REVOKE %s ON %s FROM %s',
                                  entry.rights, entry.relation, entry.grantee);
    END LOOP;
END $$;

DO $$
DECLARE
    entry record;
BEGIN
    FOR entry IN
        SELECT DISTINCT d.defaclrole::pg_catalog.regrole::text AS creator,
               CASE WHEN d.defaclnamespace = 0 THEN '' ELSE 'IN SCHEMA public ' END AS scope,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                    ELSE a.grantee::pg_catalog.regrole::text END AS grantee
        FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) a
        WHERE d.defaclobjtype = 'r'
          AND d.defaclnamespace IN (0, 'public'::pg_catalog.regnamespace)
          AND a.privilege_type IN ('DELETE', 'TRUNCATE') AND a.grantee <> d.defaclrole
          AND pg_catalog.pg_has_role(d.defaclrole, 'MEMBER')
    LOOP
        EXECUTE pg_catalog.format(
            'ALTER DEFAULT PRIVILEGES FOR ROLE %s %sREVOKE DELETE, TRUNCATE ON TABLES FROM %s',
            entry.creator, entry.scope, entry.grantee);
    END LOOP;
END $$;

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
        EXECUTE pg_catalog.format('GRANT DELETE ON public.ohlcv TO %s', grantee);
    END LOOP;
END $$;

COMMIT;
