"""Every wait is bounded and says which limit ran out: statement, lock and idle-transaction
timeouts on PostgreSQL, the busy timeout on SQLite, the pool timeout on both, and
``connect()`` on a locked SQLite file. Locks are held for real, by another connection or process.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.config import ConfigError, DatabaseSettings, get_settings
from iftb.data.storage import (
    DatabaseConnectionError,
    DatabaseManager,
    OHLCVRepository,
    QueryTimeoutError,
    RetryPolicy,
    Timeouts,
)
from tests.factories import make_bar
from tests.support.lock_holder import sqlite_write_lock

QUICK = Timeouts(statement=5, lock=0.2, busy=0.2, pool=0.2)
"""Lock waits end at 0.2 s. The statement limit is far above it: a statement that spends a
while before it starts waiting (on the Citus tier, a first look at the cluster's metadata can
take half a second) must still end on the lock limit."""
SHORT_STATEMENTS = Timeouts(statement=0.5, lock=0.2, busy=0.2, pool=0.2)
FAST_RETRIES = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)
BAR = make_bar()
Release = Callable[[], Awaitable[None]]


@asynccontextmanager
async def candles_locked(database_url: str) -> AsyncIterator[Release]:
    """Another connection (another process, on SQLite) holding the lock candle writes need;
    yields the function that lets go."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        async with sqlite_write_lock(str(url.database)) as holder:
            yield holder.release
        return
    holder = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute("LOCK TABLE ohlcv IN ACCESS EXCLUSIVE MODE")
    try:
        yield transaction.rollback
    finally:
        await holder.close()


async def upsert_one(session: AsyncSession) -> int:
    return await OHLCVRepository(session).upsert_many([BAR])


@asynccontextmanager
async def manager(
    database_url: str, timeouts: Timeouts = QUICK, **options: object
) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(database_url, timeouts=timeouts, **options) as db:  # type: ignore[arg-type]
        yield db


async def test_a_write_waiting_for_a_held_lock_fails_naming_the_limit_and_its_value(
    database_url: str, backend: str
) -> None:
    limit = "busy_timeout" if backend == "sqlite" else "lock_timeout"
    async with manager(database_url) as db, candles_locked(database_url):
        with pytest.raises(QueryTimeoutError) as raised:
            async with db.get_session() as session:
                await upsert_one(session)
    assert raised.value.limit == limit
    assert str(raised.value).startswith(f"{limit} (0.2 s) exceeded")


async def test_run_idempotent_retries_a_lock_wait_and_succeeds_once_the_lock_is_released(
    database_url: str,
) -> None:
    attempts = 0
    async with (
        manager(database_url, retry_policy=FAST_RETRIES) as db,
        candles_locked(database_url) as release,
    ):

        async def upsert_releasing_on_the_second_attempt(session: AsyncSession) -> int:
            nonlocal attempts
            attempts += 1
            if attempts == 2:
                await release()
            return await upsert_one(session)

        assert await db.run_idempotent(upsert_releasing_on_the_second_attempt) == 1
    assert attempts == 2


async def test_run_idempotent_gives_up_on_a_lock_never_released_after_its_attempts(
    database_url: str,
) -> None:
    attempts = 0

    async def upsert_counting(session: AsyncSession) -> int:
        nonlocal attempts
        attempts += 1
        return await upsert_one(session)

    async with (
        manager(database_url, retry_policy=FAST_RETRIES) as db,
        candles_locked(database_url),
    ):
        with pytest.raises(QueryTimeoutError):
            await db.run_idempotent(upsert_counting)
    assert attempts == FAST_RETRIES.attempts


@pytest.mark.postgres_only
async def test_a_statement_running_past_statement_timeout_is_cancelled_and_named(
    database_url: str, backend: str
) -> None:
    async with manager(database_url, SHORT_STATEMENTS) as db:
        with pytest.raises(QueryTimeoutError, match=r"statement_timeout \(0.5 s\)") as raised:
            async with db.get_session() as session:
                await session.execute(text("SELECT pg_sleep(30)"))
    assert raised.value.limit == "statement_timeout"


@pytest.mark.postgres_only
async def test_a_transaction_left_idle_past_its_limit_is_ended_and_its_locks_freed(
    database_url: str, backend: str
) -> None:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    admin = await asyncpg.connect(url)
    async with DatabaseManager(database_url, timeouts=Timeouts(idle_in_transaction=0.2)) as db:
        with pytest.raises(DatabaseConnectionError):
            async with db.get_session() as session:
                await upsert_one(session)  # holds the candle's row lock, then idles
                backend_pid = await session.scalar(text("SELECT pg_backend_pid()"))
                async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
                    while await admin.fetchval(  # noqa: ASYNC110 - polls the server's own state
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", backend_pid
                    ):
                        await asyncio.sleep(0.05)
                await upsert_one(session)
        await admin.close()
        async with db.get_session() as session:  # the server ended it: its lock is free
            assert await upsert_one(session) == 1


@pytest.mark.postgres_only
async def test_postgresql_connections_carry_the_configured_limits(
    database_url: str, backend: str
) -> None:
    timeouts = Timeouts(statement=12, lock=3, idle_in_transaction=45)
    async with DatabaseManager(database_url, timeouts=timeouts) as db, db.get_session() as session:
        limits = [
            await session.scalar(text(f"SHOW {name}"))
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        ]
    assert limits == ["12s", "3s", "45s"]


async def test_an_exhausted_pool_fails_naming_pool_timeout(database_url: str) -> None:
    async with (
        manager(database_url, pool_size=1, max_overflow=0) as db,
        db.get_session(read_only=True) as holding,
    ):
        await holding.execute(text("SELECT 1"))  # the pool's only connection, in use
        with pytest.raises(QueryTimeoutError) as raised:
            async with db.get_session(read_only=True) as waiting:
                await waiting.execute(text("SELECT 1"))
    assert raised.value.limit == "pool_timeout"
    assert "pool_timeout (0.2 s) exceeded" in str(raised.value)


@pytest.mark.sqlite_only
async def test_sqlite_file_databases_pool_as_many_connections_as_asked(
    database_url: str, backend: str
) -> None:
    async with DatabaseManager(database_url, pool_size=3, max_overflow=2) as db:
        assert db.engine.pool.size() == 3  # type: ignore[attr-defined]
        assert db.engine.pool._max_overflow == 2  # type: ignore[attr-defined]


@pytest.mark.sqlite_only
async def test_connect_succeeds_while_another_process_holds_the_write_lock(
    database_url: str, backend: str
) -> None:
    path = str(make_url(database_url).database)
    async with sqlite_write_lock(path) as holder:
        async with asyncio.timeout(60):  # a guard against hanging, not a timing assertion
            async with DatabaseManager(database_url, connect_timeout=0.5) as db:
                assert db.is_connected
        assert holder.is_holding


@pytest.mark.sqlite_only
async def test_connect_to_a_locked_sqlite_file_is_a_lock_error_bounded_by_connect_timeout(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "new.db"
    async with sqlite_write_lock(str(path), how="create") as holder:
        manager = DatabaseManager(f"sqlite+aiosqlite:///{path}", connect_timeout=0.5)
        async with asyncio.timeout(60):  # a guard against hanging, not a timing assertion
            with pytest.raises(QueryTimeoutError) as raised:
                await manager.connect()
        assert holder.is_holding
    assert not isinstance(raised.value, DatabaseConnectionError)
    assert raised.value.limit == "connect_timeout"
    assert "connect_timeout (0.5 s) exceeded" in str(raised.value)
    assert "is locked by another connection" in str(raised.value)
    assert not manager.is_connected


def test_timeouts_come_from_db_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "DB_STATEMENT_TIMEOUT": "12",
        "DB_LOCK_TIMEOUT": "3",
        "DB_IDLE_IN_TRANSACTION_TIMEOUT": "45",
        "DB_BUSY_TIMEOUT": "7",
        "DB_POOL_TIMEOUT": "9",
    }.items():
        monkeypatch.setenv(name, value)
    settings = DatabaseSettings(sqlite_path=tmp_path / "s.db")
    assert DatabaseManager.from_settings(settings).timeouts == Timeouts(12, 3, 45, 7, 9)


def test_default_timeouts_suit_a_live_bot_and_negative_ones_are_refused() -> None:
    assert Timeouts() == Timeouts(statement=30, lock=10, idle_in_transaction=60, busy=30, pool=30)
    for seconds in (-1, float("inf"), float("nan"), 2_147_484):
        with pytest.raises(ValueError, match="lock timeout must be between 0 and 2147483 seconds"):
            Timeouts(lock=seconds)


@pytest.mark.parametrize("seconds", ["-1", "inf", "nan", "1e7"])
def test_a_timeout_setting_out_of_range_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, seconds: str
) -> None:
    monkeypatch.setenv("DB_LOCK_TIMEOUT", seconds)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="DB_LOCK_TIMEOUT"):
            get_settings()
    finally:
        get_settings.cache_clear()


@pytest.mark.postgres_only
async def test_a_frozen_server_is_a_bounded_wait_that_run_idempotent_retries(
    database_url: str, backend: str
) -> None:
    """The backend serving a unit of work is stopped (SIGSTOP): the server's own limits cannot
    fire, and a unit of work once waited past 40 s with statement_timeout at 2 s. The client's
    bound (``command_timeout``, statement + 5 s) ends it with a ``QueryTimeoutError`` naming it;
    ``run_idempotent`` retries on another connection and succeeds."""
    limits = Timeouts(statement=0.5, lock=0.2, busy=0.2, pool=5)
    async with manager(database_url, limits) as db:
        async with db.get_session() as session:
            frozen = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        os.kill(frozen, signal.SIGSTOP)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(QueryTimeoutError, match=r"command_timeout \(5.5 s\)") as raised:
                async with db.get_session() as session:
                    await session.execute(text("SELECT 1"))
            assert raised.value.limit == "command_timeout"
            assert asyncio.get_running_loop().time() - started < 30
            attempts = []

            async def answer(session: AsyncSession) -> int:
                attempts.append(1)
                return int((await session.execute(text("SELECT 2"))).scalar_one())

            assert await db.run_idempotent(answer) == 2
        finally:
            os.kill(frozen, signal.SIGCONT)
