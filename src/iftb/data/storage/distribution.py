"""Moving a PostgreSQL database onto Citus (``iftb-db distribute``).

Only the candles are distributed: ``ohlcv`` is the one table that outgrows a machine, every
unique key of it holds ``symbol`` and every hot query filters on it, so distributed by symbol each
of those queries runs on one shard. The journal and audit tables stay local to the coordinator:
they hold thousands to millions of rows, are never joined with candles, and keep plain
PostgreSQL's transactions, partial unique indexes and foreign keys (docs/scaling.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from iftb.data.storage import migrations
from iftb.data.storage.errors import ClusterError, SchemaOutOfDateError, ValidationError
from iftb.data.storage.repositories.market.candle_partitions import ensure_partitions

CANDLES = "public.ohlcv"
DISTRIBUTION_COLUMN = "symbol"
MAX_SHARDS = 1024
"""Far above any sensible count (Citus advises a few times the cores of the cluster)."""

_UNBOUNDED = (text("SET LOCAL statement_timeout = 0"), text("SET LOCAL lock_timeout = 0"))
_SCHEMA_LOCK = text("SELECT pg_catalog.pg_advisory_xact_lock(:key)")
_CITUS_VERSION = text("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus'")
_WORKERS = text("SELECT count(*) FROM pg_catalog.citus_get_active_worker_nodes()")
_SHARD_COUNT = text(
    "SELECT count(*) FROM pg_catalog.pg_dist_shard WHERE logicalrelid = CAST(:name AS regclass)"
)
_DISTRIBUTE = text(
    "SELECT pg_catalog.create_distributed_table(CAST(:name AS regclass), :column,"
    " shard_count => :shards)"
)
# regrole's text form is already a quoted identifier, hence %s rather than %I.
_SCHEMA_RIGHTS = text("""
SELECT pg_catalog.format('SET citus.enable_ddl_propagation TO off; '
                         'ALTER SCHEMA public OWNER TO %s; REVOKE ALL ON SCHEMA public FROM PUBLIC',
                         n.nspowner::pg_catalog.regrole)
    || coalesce((SELECT pg_catalog.string_agg(pg_catalog.format('; GRANT %s ON SCHEMA public TO %s',
                     a.privilege_type,
                     CASE a.grantee WHEN 0 THEN 'PUBLIC'
                          ELSE a.grantee::pg_catalog.regrole::text END),
                     '')
                 FROM pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner), '')
FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'""")
_ON_WORKERS = text(
    "SELECT nodename, nodeport, result FROM pg_catalog.run_command_on_workers(:command)"
    " WHERE NOT success"
)
_DROP_LOCAL_COPY = text(
    "SELECT pg_catalog.truncate_local_data_after_distributing_table(CAST(:name AS regclass))"
)


@dataclass(frozen=True, slots=True)
class Distribution:
    """What ``distribute`` found and did."""

    citus_version: str
    workers: int
    shard_count: int
    distributed_now: bool
    """False when the candles were distributed already (the call changed nothing there)."""
    partitions_created: int = 0


async def distribute(engine: AsyncEngine, shard_count: int, months_ahead: int) -> Distribution:
    """Distribute the candles by symbol over ``shard_count`` shards, drop the coordinator's
    local copy of them, give every worker the schema rights the roles need, then create the
    partitions of this month and the next ``months_ahead``.

    Safe to run twice: a distributed table keeps its shards (changing the count is Citus's
    ``alter_distributed_table``, a data move this command does not start on its own).
    """
    if not 1 <= shard_count <= MAX_SHARDS:
        raise ValidationError(f"shard_count: must be 1..{MAX_SHARDS}, got {shard_count}")
    if months_ahead < 0:
        raise ValidationError(f"months_ahead: must be 0 or more, got {months_ahead}")
    async with engine.begin() as connection:
        done = await _distribute_candles(connection, shard_count)
    # After the commit: the months are made in transactions of their own (candle_partitions).
    async with engine.connect() as connection:
        return replace(done, partitions_created=await _months_ahead(connection, months_ahead))


async def _distribute_candles(connection: AsyncConnection, shard_count: int) -> Distribution:
    version, workers = await _cluster(connection)
    # Moving the rows may outlast any statement timeout; two distributes (or a distribute and
    # an upgrade) started together take turns.
    for statement in _UNBOUNDED:
        await connection.execute(statement)
    await connection.execute(_SCHEMA_LOCK, {"key": migrations.SCHEMA_LOCK})
    revision = await connection.run_sync(migrations.current_revision)
    if revision != migrations.head_revision():
        raise SchemaOutOfDateError(
            f"database schema is at revision {revision or 'none (empty database)'}, the code "
            f"needs {migrations.head_revision()}: run `iftb-db upgrade` before distributing"
        )
    existing = int(await connection.scalar(_SHARD_COUNT, {"name": CANDLES}) or 0)
    if not existing:
        await connection.execute(
            _DISTRIBUTE, {"name": CANDLES, "column": DISTRIBUTION_COLUMN, "shards": shard_count}
        )
        await connection.execute(_DROP_LOCAL_COPY, {"name": CANDLES})
    await _copy_schema_rights_to_workers(connection)
    return Distribution(
        citus_version=version,
        workers=workers,
        shard_count=int(existing or shard_count),
        distributed_now=not existing,
    )


async def citus_version(connection: AsyncConnection) -> str | None:
    """The version of the Citus extension in this database, or None without Citus."""
    version = await connection.scalar(_CITUS_VERSION)
    return None if version is None else str(version)


async def _cluster(connection: AsyncConnection) -> tuple[str, int]:
    """The Citus version and the number of active workers; a ClusterError without either."""
    version = await citus_version(connection)
    if version is None:
        raise ClusterError(
            "the Citus extension is not installed in this database: as a superuser, run "
            "CREATE EXTENSION citus on the coordinator and every worker, then "
            "SELECT citus_add_node(host, port) for each worker (docs/scaling.md)"
        )
    workers = int(await connection.scalar(_WORKERS) or 0)
    if workers == 0:
        raise ClusterError(
            "Citus has no active worker: add each with SELECT citus_add_node(host, port) "
            "on the coordinator (docs/scaling.md)"
        )
    return version, workers


async def _months_ahead(connection: AsyncConnection, months_ahead: int) -> int:
    """The partitions of this month and the next ``months_ahead``, so that no write pays for
    one (on Citus a new month makes a table per shard: far slower than on one node)."""
    now = datetime.now(UTC)
    return await ensure_partitions(connection, now, now + timedelta(days=31 * months_ahead))


async def _copy_schema_rights_to_workers(connection: AsyncConnection) -> None:
    """Give the ``public`` schema of every worker the coordinator's owner and grants: the
    migrations create functions and shards there as the schema's owner, and Citus does not
    carry schema rights to workers by itself (nor to workers added later). Once ``public``
    holds a distributed table, a worker refuses such DDL unless told it comes from the
    coordinator (propagation off), which is what Citus itself sends."""
    rights = await connection.scalar(_SCHEMA_RIGHTS)
    refused = (await connection.execute(_ON_WORKERS, {"command": rights})).first()
    if refused is not None:
        raise ClusterError(
            f"worker {refused.nodename}:{refused.nodeport} refused the schema's rights: "
            f"{refused.result}"
        )
