"""Partition functions the bot cannot turn against other tables; partitions only for the months
that hold rows; a journal the bot can append to and update but not delete from.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The SECURITY DEFINER functions of 0002 ran with ``search_path = pg_catalog, public``: PostgreSQL
then searches the caller's temporary schema *first* for relations, so a bot role with TEMPORARY
could put a ``pg_inherits`` there that made ``iftb_drop_ohlcv_partitions`` drop any table. Now
every function pins ``pg_catalog, pg_temp`` (``pg_temp`` last, as the PostgreSQL docs prescribe
for SECURITY DEFINER functions), names every relation and function with its schema, and checks
each relation it is about to drop, or finds already there, is a partition of ``public.ohlcv``.

``iftb_ensure_ohlcv_partitions(first, last)`` created every partition between two candles (two
candles a century apart: 1,197 of them); ``iftb_ensure_ohlcv_partitions(open_times[])`` creates
only those of the units (month by default) the given open times fall in. The unit is the one the
database was migrated with, read back from the installed function.

Privileges, for every role other than the tables' owner: no DELETE or TRUNCATE on any table
(journal, audit log, daily performance, and by default every table created later), no UPDATE
of the audit log (``system_events``, ``llm_analysis_log``: a rewrite erases as well as a delete),
no write to ``alembic_version``; roles that write candles keep DELETE on ``ohlcv``
(``delete_range``). Audit retention is a maintenance job run as the owner (docs/security.md). A
downgrade restores the 0002 functions and leaves the privileges as tight as they are.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from iftb.config import get_settings

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STEPS = {"week": "1 week", "month": "1 month", "quarter": "3 months", "year": "1 year"}
OLD_ENSURE = "public.iftb_ensure_ohlcv_partitions(timestamptz, timestamptz)"
NEW_ENSURE = "public.iftb_ensure_ohlcv_partitions(timestamptz[])"
TRUSTED_PATH = "SET search_path = pg_catalog, pg_temp"

IS_PARTITION = f"""
CREATE FUNCTION public.iftb_is_ohlcv_partition(relation regclass)
RETURNS boolean LANGUAGE sql STABLE {TRUSTED_PATH} AS $$
    SELECT EXISTS (
        SELECT FROM pg_catalog.pg_inherits i
        JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
        WHERE i.inhrelid = relation
          AND i.inhparent = 'public.ohlcv'::pg_catalog.regclass
          AND c.relispartition AND c.relkind = 'r')
$$"""

LIST = rf"""
CREATE OR REPLACE FUNCTION public.iftb_ohlcv_partitions()
RETURNS TABLE (name regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE {TRUSTED_PATH} AS $$
    SELECT c.oid::pg_catalog.regclass,
           pg_catalog.substring(bound, 'FROM \(''([^'']+)''\)')::pg_catalog.timestamptz,
           pg_catalog.substring(bound, 'TO \(''([^'']+)''\)')::pg_catalog.timestamptz
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid,
    LATERAL pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
    WHERE i.inhparent = 'public.ohlcv'::pg_catalog.regclass AND c.relispartition
    ORDER BY 2
$$"""

DROP = f"""
CREATE OR REPLACE FUNCTION public.iftb_drop_ohlcv_partitions(
    range_start timestamptz, range_end timestamptz, only_symbol text DEFAULT NULL,
    only_exchange text DEFAULT NULL, only_timeframe text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER {TRUSTED_PATH} AS $$
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
END $$"""


def ensure_function(unit: str) -> str:
    """``iftb_ensure_ohlcv_partitions(open_times[])`` for partitions of one ``unit``."""
    return f"""
CREATE FUNCTION public.iftb_ensure_ohlcv_partitions(open_times timestamptz[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER {TRUSTED_PATH} AS $$
DECLARE
    bound timestamptz;
    partition_name text;
    existing regclass;
    created integer := 0;
    locked boolean := false;
BEGIN
    FOR bound IN
        SELECT DISTINCT pg_catalog.date_trunc('{unit}', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
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
                                      partition_name, bound, bound + interval '{STEPS[unit]}');
            created := created + 1;
        ELSIF NOT public.iftb_is_ohlcv_partition(existing) THEN
            RAISE EXCEPTION 'iftb_ensure_ohlcv_partitions: % is not a partition of public.ohlcv',
                existing;
        END IF;
    END LOOP;
    RETURN created;
END $$"""


def carry_execute(old: str, new: str) -> str:
    """Every role but the owner that could run ``old`` may run ``new`` (EXECUTE is revoked
    from PUBLIC, and the migrating role need not be the one whose default privileges apply)."""
    return f"""DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT a.grantee::pg_catalog.regrole::text
        FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        WHERE p.oid = '{old}'::pg_catalog.regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee NOT IN (0, p.proowner)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION {new} TO %s', grantee);
    END LOOP;
END $$"""


PRIVILEGES = [
    # No role but the owner deletes or truncates rows, or writes the migration bookkeeping.
    """DO $$
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
END $$""",
    # Tables created from now on give nobody DELETE or TRUNCATE by default either.
    """DO $$
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
END $$""",
    # Candles are re-fetchable market data: whoever writes them may delete a range of them.
    """DO $$
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
END $$""",
]


def secure_functions(unit: str) -> list[str]:
    """What this revision runs on PostgreSQL, for partitions of one ``unit``."""
    return [
        IS_PARTITION,
        LIST,
        DROP,
        ensure_function(unit),
        f"REVOKE EXECUTE ON FUNCTION {NEW_ENSURE} FROM PUBLIC",
        carry_execute(OLD_ENSURE, NEW_ENSURE),
        f"DROP FUNCTION {OLD_ENSURE}",
        *PRIVILEGES,
    ]


def _is_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _migrated_unit() -> str:
    """The partition unit this database was migrated with, read from the installed ensure
    function (a later ``DB_OHLCV_PARTITION_UNIT`` must not change the width of partitions)."""
    if op.get_context().as_sql:  # offline: no database to ask
        return get_settings().database.ohlcv_partition_unit
    source = op.get_bind().scalar(
        text(
            "SELECT pg_catalog.substring(prosrc, 'date_trunc\\(''(\\w+)''') "
            "FROM pg_catalog.pg_proc WHERE proname = 'iftb_ensure_ohlcv_partitions' "
            "AND pronamespace = 'public'::pg_catalog.regnamespace"
        )
    )
    if source not in STEPS:
        raise RuntimeError(f"cannot tell the candle partition unit from {source!r}")
    return str(source)


def upgrade() -> None:
    if not _is_postgresql():
        return
    for statement in secure_functions(_migrated_unit()):
        op.execute(statement)


def downgrade() -> None:
    if not _is_postgresql():
        return
    script = op.get_context().script
    assert script is not None
    revision_0002 = script.get_revision("0002")
    assert revision_0002 is not None
    # The same text 0002 installed; replacing a function in place keeps who may run it.
    list_, ensure, drop, revoke_ensure, _ = revision_0002.module.partition_functions(
        _migrated_unit()
    )
    for statement in [
        list_.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1),
        drop.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1),
        ensure,
        revoke_ensure,
        carry_execute(NEW_ENSURE, OLD_ENSURE),
        f"DROP FUNCTION {NEW_ENSURE}",
        "DROP FUNCTION public.iftb_is_ohlcv_partition(regclass)",
    ]:
        op.execute(statement)
