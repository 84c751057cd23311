"""Connection faults on a real PostgreSQL, produced for real: backends terminated from the
server side, the server stopped and started under a workload, and a server that is not there."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    DatabaseConnectionError,
    DatabaseManager,
    OHLCVBar,
    OHLCVRepository,
    RetryPolicy,
    Trade,
    TradeRepository,
)
from tests.support.pg_cluster import PostgresServer, throwaway_cluster

pytestmark = pytest.mark.postgres_only

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def bar(hour: int, price: int = 100) -> OHLCVBar:
    level = Decimal(price)
    return OHLCVBar(
        "BTCUSDT", "binance", "1m", T0 + timedelta(minutes=hour), level, level + 1, level - 1,
        level, Decimal(1),
    )  # fmt: skip


async def terminate_backends(server: PostgresServer, database: str) -> int:
    admin = await asyncpg.connect(server.url(driver=""))
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return int(killed)
    finally:
        await admin.close()


def database_of(manager: DatabaseManager) -> str:
    name = make_url(str(manager.engine.url)).database
    assert name is not None
    return name


async def count(manager: DatabaseManager) -> int:
    async with manager.get_session() as session:
        return int(await session.scalar(text("SELECT count(*) FROM ohlcv")) or 0)


async def test_a_backend_killed_between_units_of_work_is_replaced(
    db: DatabaseManager, postgres_server: PostgresServer
) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many([bar(0)])
    assert await terminate_backends(postgres_server, database_of(db)) >= 1

    async with db.get_session() as session:  # the pool's pre-ping finds the dead connection
        await OHLCVRepository(session).upsert_many([bar(1)])
    assert await count(db) == 2


async def test_a_backend_killed_inside_a_unit_of_work_rolls_it_back_whole(
    db: DatabaseManager, postgres_server: PostgresServer
) -> None:
    with pytest.raises(DatabaseConnectionError):
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many([bar(m) for m in range(100)])
            await terminate_backends(postgres_server, database_of(db))
            await OHLCVRepository(session).upsert_many([bar(m) for m in range(100, 200)])
    assert await count(db) == 0


async def test_an_insert_is_never_retried_blindly(
    db: DatabaseManager, postgres_server: PostgresServer
) -> None:
    attempts = 0

    async def insert_then_lose_the_connection(session: AsyncSession) -> int:
        nonlocal attempts
        attempts += 1
        await TradeRepository(session).insert(
            Trade(trade_id="t-1", symbol="BTCUSDT", exchange="binance", side="long",
                  action="open", entry_price=Decimal(100), quantity=Decimal(1))
        )  # fmt: skip
        await terminate_backends(postgres_server, database_of(db))
        return 0

    with pytest.raises(DatabaseConnectionError):  # plain get_session: one attempt, then raise
        async with db.get_session() as session:
            await insert_then_lose_the_connection(session)
    assert attempts == 1

    reads = 0

    async def read_once_failing(session: AsyncSession) -> int:
        nonlocal reads
        reads += 1
        await session.execute(text("SELECT 1"))  # holds a connection now
        if reads == 1:
            await terminate_backends(postgres_server, database_of(db))
        return len(await OHLCVRepository(session).get_latest("BTCUSDT", "1m"))

    assert await db.run_idempotent(read_once_failing) == 0
    assert reads == 2


async def test_the_server_down_at_connect_is_a_clear_error_after_a_bounded_wait() -> None:
    with throwaway_cluster() as server:
        url = server.url()
        server.stop()
        manager = DatabaseManager(url, connect_timeout=2)
        async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
            with pytest.raises(DatabaseConnectionError) as caught:
                await manager.connect()
    message = str(caught.value)
    assert f"127.0.0.1:{server.port}" in message and "database 'postgres'" in message
    assert server.password not in message


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING, logger="iftb.data.storage.retry")
    logger = logging.getLogger("iftb")
    logger.propagate, was = True, logger.propagate
    yield caplog
    logger.propagate = was


@pytest.fixture
async def restartable() -> AsyncIterator[tuple[PostgresServer, DatabaseManager]]:
    """A cluster of this test's own (stopping the session's would disturb other tests)."""
    with throwaway_cluster() as server:
        setup = DatabaseManager(server.url())
        await setup.migrate()
        await setup.disconnect()
        manager = DatabaseManager(
            server.url(),
            connect_timeout=2,
            retry_policy=RetryPolicy(attempts=40, initial_delay=0.05, max_delay=0.5),
        )
        await manager.connect()
        try:
            yield server, manager
        finally:
            await manager.disconnect()


async def test_a_workload_survives_a_server_restart_through_bounded_retries(
    restartable: tuple[PostgresServer, DatabaseManager], retry_log: pytest.LogCaptureFixture
) -> None:
    server, manager = restartable
    rounds, per_round = 40, 50
    done: list[int] = []
    warmed_up = asyncio.Event()

    async def workload() -> None:
        for n in range(rounds):
            batch = [bar(n * per_round + m, price=100 + n) for m in range(per_round)]

            async def upsert(session: AsyncSession, batch: list[OHLCVBar] = batch) -> int:
                return await OHLCVRepository(session).upsert_many(batch)

            async def latest(session: AsyncSession) -> list[OHLCVBar]:
                return await OHLCVRepository(session).get_latest("BTCUSDT", "1m", limit=5)

            await manager.run_idempotent(upsert, operation="upsert candles")
            assert (await manager.run_idempotent(latest))[0].open == 100 + n
            done.append(n)
            if n == 4:
                warmed_up.set()
            await asyncio.sleep(0.02)

    running = asyncio.create_task(workload())
    await warmed_up.wait()
    await asyncio.to_thread(server.stop)  # mid-workload: every connection dies
    await asyncio.sleep(0.5)
    await asyncio.to_thread(server.start)
    async with asyncio.timeout(60):
        await running

    assert done == list(range(rounds))
    assert await count(manager) == rounds * per_round  # nothing lost, nothing doubled
    retries = [r for r in retry_log.records if "retrying" in r.getMessage()]
    assert retries, "the restart should have been seen and retried"


async def test_retries_are_bounded(
    restartable: tuple[PostgresServer, DatabaseManager],
) -> None:
    server, manager = restartable
    manager.retry_policy = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)
    attempts = 0

    async def read(session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        await session.execute(text("SELECT 1"))

    await asyncio.to_thread(server.stop)
    try:
        with pytest.raises(DatabaseConnectionError):
            await manager.run_idempotent(read)
    finally:
        await asyncio.to_thread(server.start)
    assert attempts == 3
