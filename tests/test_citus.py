"""Citus: ``iftb-db distribute``, migrations on a distributed database, what only real workers
show (unique violations found by a worker, a worker stopping mid-write), and the doctor.

Everything else the library does is proven on Citus by the whole PostgreSQL suite running on the
Citus tier (``pytest --citus``); the tests here are the ones specific to a cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from iftb.cli import app
from iftb.data.storage import (
    ClusterError,
    DatabaseConnectionError,
    DatabaseManager,
    DuplicateError,
    OHLCVBar,
    OHLCVRepository,
    SchemaOutOfDateError,
    ValidationError,
)
from iftb.data.storage.engine import CITUS_CACHED_CONNECTIONS
from tests.conftest import CITUS_SHARDS, on_citus, scratch_postgres_database
from tests.support.citus_cluster import CitusCluster
from tests.support.pg_cluster import PostgresServer

SYMBOLS = [f"C{n:02d}USDT" for n in range(12)]
"""Enough symbols to land on every shard of both workers."""
T0 = datetime(2024, 1, 30, tzinfo=UTC)
EVERY_CANDLE = text(
    'SELECT symbol, exchange, timeframe, "timestamp", open, high, low, close, volume FROM ohlcv'
    ' ORDER BY symbol, exchange, timeframe, "timestamp"'
)


def candles(hours: int, start: datetime = T0, symbols: list[str] = SYMBOLS) -> list[OHLCVBar]:
    """Hourly candles of every symbol; from ``T0`` they cross from January into February."""
    price = Decimal("100.12345678")
    return [
        OHLCVBar(symbol, "binance", "1h", start + timedelta(hours=h), price, price + 1,
                 price - 1, price, Decimal("0.00000001"))
        for symbol in symbols
        for h in range(hours)
    ]  # fmt: skip


async def checksum(manager: DatabaseManager) -> tuple[int, str]:
    """How many candles are stored, and a digest of every column of every one."""
    async with manager.get_session(read_only=True) as session:
        rows = (await session.execute(EVERY_CANDLE)).all()
    return len(rows), hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()


@pytest.fixture
async def undistributed(citus: CitusCluster) -> AsyncIterator[DatabaseManager]:
    """A Citus database with its workers, migrated to head, holding candles in two months,
    not yet distributed: what a user has before running ``iftb-db distribute``."""
    async with scratch_postgres_database(citus.coordinator) as name:
        manager = DatabaseManager(citus.coordinator.url(name))
        await manager.migrate()
        await manager.connect()
        async with manager.get_session() as session:
            await OHLCVRepository(session).insert_many(candles(48))
        try:
            yield manager
        finally:
            await manager.disconnect()


def libpq_url(manager: DatabaseManager) -> str:
    return manager.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def distributed_tables(url: str) -> set[str]:
    """The distributed tables of the database at ``url`` (a libpq URL), partitions left out."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT logicalrelid::text FROM pg_dist_partition WHERE logicalrelid NOT IN "
            "(SELECT inhrelid FROM pg_inherits)"
        )
    finally:
        await connection.close()
    return {row[0] for row in rows}


@pytest.mark.citus_only
async def test_distribute_moves_the_candles_out_keeps_them_exact_and_is_safe_twice(
    undistributed: DatabaseManager,
) -> None:
    before = await checksum(undistributed)
    done = await undistributed.distribute(shard_count=CITUS_SHARDS, months_ahead=2)
    assert (done.distributed_now, done.shard_count, done.workers) == (True, CITUS_SHARDS, 2)
    assert await checksum(undistributed) == before
    # The journal and audit tables stay local to the coordinator (docs/scaling.md).
    assert await distributed_tables(libpq_url(undistributed)) == {"ohlcv"}
    async with undistributed.get_session(read_only=True) as session:
        local_bytes = await session.scalar(
            text(
                "SELECT sum(pg_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'ohlcv'::regclass"
            )
        )
    assert local_bytes == 0, "the coordinator kept its own copy of the candles"

    again = await undistributed.distribute(shard_count=64, months_ahead=2)
    assert (again.distributed_now, again.shard_count, again.partitions_created) == (
        False,
        CITUS_SHARDS,
        0,
    )
    assert await checksum(undistributed) == before


@pytest.mark.citus_only
async def test_distribute_creates_the_coming_months_so_no_write_pays_for_one(
    undistributed: DatabaseManager,
) -> None:
    await undistributed.distribute(shard_count=CITUS_SHARDS, months_ahead=3)
    now = datetime.now(UTC)
    async with undistributed.get_session() as session:
        repo = OHLCVRepository(session)
        assert await repo.create_partitions(now + timedelta(days=31 * 3)) == 0
        names = {partition.name for partition in await repo.get_partitions()}
    assert f"ohlcv_p{now:%Y%m}01" in names


@pytest.mark.citus_only
async def test_distribute_refuses_a_schema_behind_the_code_and_changes_nothing(
    citus: CitusCluster,
) -> None:
    async with scratch_postgres_database(citus.coordinator) as name:
        manager = DatabaseManager(citus.coordinator.url(name))
        try:
            await manager.migrate("0001")
            with pytest.raises(SchemaOutOfDateError, match="run `iftb-db upgrade` before"):
                await manager.distribute(shard_count=CITUS_SHARDS)
            assert await distributed_tables(citus.coordinator.url(name, driver="")) == set()
        finally:
            await manager.disconnect()


@asynccontextmanager
async def migrated_alone(server: PostgresServer, name: str, sql: str = "") -> AsyncIterator[str]:
    """A database made on ``server`` alone (after ``sql`` in it), migrated; dropped afterwards."""
    admin = await asyncpg.connect(server.url(driver=""))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        if sql:
            database = await asyncpg.connect(server.url(name, driver=""))
            await database.execute(sql)
            await database.close()
        manager = DatabaseManager(server.url(name))
        await manager.migrate()
        await manager.disconnect()
        yield server.url(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.citus_only
async def test_distribute_without_workers_says_how_to_add_them(citus: CitusCluster) -> None:
    async with (
        migrated_alone(citus.coordinator, "iftb_no_workers", "CREATE EXTENSION citus") as url,
        DatabaseManager(url) as manager,
    ):
        with pytest.raises(ClusterError, match="citus_add_node"):
            await manager.distribute()


@pytest.mark.postgres_only
async def test_distributing_a_database_without_citus_says_how_to_install_it(
    backend: str, postgres_server: PostgresServer
) -> None:
    """A database made on the server alone, without the extension (on either tier)."""
    async with (
        migrated_alone(postgres_server, "iftb_without_citus") as url,
        DatabaseManager(url) as manager,
    ):
        with pytest.raises(ClusterError, match="CREATE EXTENSION citus"):
            await manager.distribute()


@pytest.mark.sqlite_only
async def test_sqlite_cannot_be_distributed(backend: str, db: DatabaseManager) -> None:
    with pytest.raises(ClusterError, match="SQLite"):
        await db.distribute()


@pytest.fixture
async def undistributed_url(undistributed: DatabaseManager) -> str:
    """The URL of ``undistributed``, whose coordinator has analysed its local candles."""
    async with undistributed.get_session() as session:
        await session.execute(text("ANALYZE ohlcv"))
    return undistributed.engine.url.render_as_string(hide_password=False)


async def write_more_candles(url: str) -> None:
    """48 more candles per symbol, then the shards analysed: autovacuum may have analysed them
    between the two writes (it did once under load), leaving an estimate of the first alone."""
    async with DatabaseManager(url) as manager:
        async with manager.get_session() as session:
            await OHLCVRepository(session).insert_many(candles(48, start=T0 + timedelta(days=2)))
        async with manager.get_session() as session:
            await session.execute(text("ANALYZE ohlcv"))


@pytest.mark.citus_only
def test_iftb_db_distribute_reports_what_it_did_and_doctor_counts_the_workers_rows(
    undistributed_url: str,
) -> None:
    url = undistributed_url
    runner = CliRunner()
    first = runner.invoke(app, ["distribute", "--shards", "4", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "candles distributed by symbol: 4 shards over 2 workers" in first.output
    second = runner.invoke(app, ["distribute", "--shards", "4", "--database-url", url])
    assert second.exit_code == 0, second.output
    assert "already distributed" in second.output
    asyncio.run(write_more_candles(url))
    doctor = runner.invoke(app, ["doctor", "--database-url", url])
    assert doctor.exit_code == 0, doctor.output
    ohlcv_row = next(line for line in doctor.output.splitlines() if "│ ohlcv " in line)
    # the rows on the workers, not the coordinator's estimate of its copy from before
    assert f"{2 * 48 * len(SYMBOLS):,}" in ohlcv_row
    assert "distributed: ohlcv" in doctor.output


async def test_a_duplicate_in_a_batch_over_many_shards_is_a_duplicate_error_and_writes_nothing(
    db: DatabaseManager,
) -> None:
    """On Citus a worker finds the duplicate during a multi-shard COPY and reports it as an
    internal error (XX000); it must read as on every other backend."""
    async with db.get_session() as session:
        await OHLCVRepository(session).insert_many(candles(2))
    before = await checksum(db)
    batch = candles(4, start=T0 + timedelta(hours=2)) + candles(1, symbols=[SYMBOLS[-1]])
    with pytest.raises(DuplicateError, match="row 48: candle already stored: C11USDT"):
        async with db.get_session() as session:
            await OHLCVRepository(session).insert_many(batch)
    assert await checksum(db) == before


@pytest.mark.postgres_only
async def test_connections_plan_as_their_server_needs(backend: str, db: DatabaseManager) -> None:
    """Generic plans prune partitions at run time on PostgreSQL; Citus cannot plan every
    generic plan with parameters, so there connections keep PostgreSQL's default (and keep
    connections to the workers open between transactions)."""
    async with db.get_session(read_only=True) as session:
        mode = await session.scalar(text("SHOW plan_cache_mode"))
        if on_citus():
            cached = await session.scalar(text("SHOW citus.max_cached_conns_per_worker"))
            assert cached == str(CITUS_CACHED_CONNECTIONS)
    assert mode == ("auto" if on_citus() else "force_generic_plan")


@pytest.mark.citus_only
async def test_migrations_go_down_to_0001_and_back_up_on_a_distributed_database(
    undistributed: DatabaseManager,
) -> None:
    """With 32 shards and every multi-shard query forced to run in parallel (what a large table
    does by itself), migrations still go down and up, the candles exact."""
    async with undistributed.get_session() as session:
        name = await session.scalar(text("SELECT current_database()"))
        await session.execute(
            text(f'ALTER DATABASE "{name}" SET citus.force_max_query_parallelization = on')
        )
    await undistributed.disconnect()
    await undistributed.connect()
    await undistributed.distribute(shard_count=32)
    before = await checksum(undistributed)
    await undistributed.downgrade("0001")
    assert await checksum(undistributed) == before
    await undistributed.migrate()
    assert await checksum(undistributed) == before
    # Below 0002 the candle table is a new, local table: distributing again moves it back out.
    assert await distributed_tables(libpq_url(undistributed)) == set()
    assert (await undistributed.distribute(shard_count=CITUS_SHARDS)).distributed_now
    assert await checksum(undistributed) == before


@pytest.mark.citus_only
async def test_a_worker_stopped_during_a_bulk_write_leaves_whole_batches_or_nothing(
    citus: CitusCluster, db: DatabaseManager
) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).insert_many(candles(24))
    committed = await checksum(db)
    citus.workers[1].stop(mode="immediate")
    try:
        with pytest.raises(DatabaseConnectionError):
            async with db.get_session() as session:
                repo = OHLCVRepository(session)
                await repo.insert_many(candles(24, start=T0 + timedelta(days=1)))
                await repo.upsert_many(candles(24, start=T0 + timedelta(days=2)))
    finally:
        citus.workers[1].start()
    assert await checksum(db) == committed
    # A connection the coordinator kept open to the stopped worker fails the first unit of work
    # that uses it; an idempotent write is retried past it.
    batch = candles(24, start=T0 + timedelta(days=1))
    await db.run_idempotent(lambda session: OHLCVRepository(session).upsert_many(batch))
    assert (await checksum(db))[0] == committed[0] + 24 * len(SYMBOLS)


PROBE_NAME = "Iftb Schema-Probe"
"""A role whose name must be quoted."""
PROBE = f'"{PROBE_NAME}"'


@pytest.mark.citus_only
async def test_distribute_gives_every_worker_the_schemas_owner_and_grants(
    citus: CitusCluster, database_url: str, db: DatabaseManager
) -> None:
    """A worker whose ``public`` schema lacks a grant (as a worker added later does: Citus does
    not carry schema rights) gets the coordinator's owner and grants from ``distribute``."""
    name = database_url.rsplit("/", 1)[1]
    rights = (
        "SELECT nspowner::regrole::text, nspacl::text FROM pg_namespace WHERE nspname = 'public'"
    )
    coordinator = await asyncpg.connect(citus.coordinator.url(name, driver=""))
    worker = await asyncpg.connect(citus.workers[0].url(name, driver=""))
    try:
        await coordinator.execute(f"DROP ROLE IF EXISTS {PROBE}")
        await coordinator.execute(f"CREATE ROLE {PROBE} NOLOGIN")
        await coordinator.execute(f"GRANT USAGE ON SCHEMA public TO {PROBE}")
        await worker.execute(
            f"SET citus.enable_ddl_propagation TO off;REVOKE ALL ON SCHEMA public FROM {PROBE}"
        )
        assert await worker.fetchrow(rights) != await coordinator.fetchrow(rights)
        await db.distribute(shard_count=CITUS_SHARDS)
        assert await worker.fetchrow(rights) == await coordinator.fetchrow(rights)
        assert await worker.fetchval(
            "SELECT has_schema_privilege($1, 'public', 'USAGE')", PROBE_NAME
        )
    finally:  # the role stays: the cluster is thrown away, and the database with its grants
        await worker.close()
        await coordinator.close()


@pytest.mark.citus_only
async def test_two_iftb_db_distributes_started_together_take_turns(
    undistributed: DatabaseManager,
) -> None:
    before = await checksum(undistributed)
    url = undistributed.engine.url.render_as_string(hide_password=False)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from iftb.cli import app; app()",
            "distribute",
            "--shards",
            str(CITUS_SHARDS),
            "--database-url",
            url,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [(await process.communicate())[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sorted("already distributed" in output for output in outputs) == [False, True]
    assert await checksum(undistributed) == before


@pytest.mark.postgres_only
async def test_a_unit_of_work_that_made_a_partition_itself_writes_into_another_new_month(
    backend: str, db: DatabaseManager
) -> None:
    """Such a unit holds a lock on the candle table that a transaction of its own making the
    next partition would wait for, for ever on Citus: the partition is made in place."""
    made, later = (
        datetime(2019, 7, 1, tzinfo=UTC),
        candles(2, start=datetime(2019, 9, 1, tzinfo=UTC)),
    )
    async with asyncio.timeout(60), db.get_session() as session:
        await session.execute(
            text("SELECT iftb_ensure_ohlcv_partitions(ARRAY[CAST(:at AS timestamptz)])"),
            {"at": made},
        )
        await OHLCVRepository(session).insert_many(later)
    assert (await checksum(db))[0] == len(later)


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    ("options", "rule"),
    [
        ({"shard_count": 0}, "shard_count: must be 1..1024, got 0"),
        ({"shard_count": 1025}, "shard_count: must be 1..1024, got 1025"),
        ({"months_ahead": -1}, "months_ahead: must be 0 or more, got -1"),
    ],
)
async def test_distribute_refuses_impossible_options_before_touching_anything(
    backend: str, db: DatabaseManager, options: dict[str, int], rule: str
) -> None:
    before = await checksum(db)
    with pytest.raises(ValidationError, match=re.escape(rule)):
        await db.distribute(**options)
    assert await checksum(db) == before
