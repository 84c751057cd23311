"""A full disk is a clear, final error: named as such, never retried as a lost connection, and
never hidden behind the failed savepoint rollback that follows it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    DatabaseManager,
    DiskFullError,
    OHLCVRepository,
    RetryPolicy,
    SystemEventRepository,
)
from tests.factories import make_bar


async def record_a_backfill(session: AsyncSession) -> int:
    """An event and 1,000 candles: more than the full disk can take."""
    bars = [make_bar(m, timeframe="1m") for m in range(1_000)]
    await SystemEventRepository(session).log_event("backfill", "info", "1,000 candles")
    return await OHLCVRepository(session).upsert_many(bars)


@pytest.fixture
async def full_db(database_url: str, backend: str) -> AsyncIterator[DatabaseManager]:
    """A database whose disk is full. SQLite: for real, its size capped at what it holds
    (``max_page_count``, on the pool's only connection). PostgreSQL, whose disk the suite cannot
    fill: the server raises the real SQLSTATE 53100 (disk_full) for every event written."""
    retries = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)
    async with DatabaseManager(
        database_url, pool_size=1, max_overflow=0, retry_policy=retries
    ) as db:
        async with db.get_session() as session:
            if backend == "sqlite":
                pages = await session.scalar(text("PRAGMA page_count"))
                await session.execute(text(f"PRAGMA max_page_count = {int(pages or 0)}"))
            else:
                await session.execute(
                    text(
                        "CREATE FUNCTION disk_is_full() RETURNS trigger LANGUAGE plpgsql AS $$ "
                        "BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' "
                        "USING ERRCODE = 'disk_full'; END $$"
                    )
                )
                await session.execute(
                    text(
                        "CREATE TRIGGER disk_is_full BEFORE INSERT ON system_events "
                        "FOR EACH ROW EXECUTE FUNCTION disk_is_full()"
                    )
                )
        yield db


async def test_a_full_disk_is_a_disk_full_error_not_a_failed_savepoint(
    full_db: DatabaseManager,
) -> None:
    with pytest.raises(DiskFullError, match="^disk full: ") as raised:
        async with full_db.get_session() as session:
            await record_a_backfill(session)
    assert "savepoint" not in str(raised.value)


async def test_a_full_disk_is_never_retried(full_db: DatabaseManager) -> None:
    attempts = 0

    async def log_a_long_event(session: AsyncSession) -> int:
        nonlocal attempts
        attempts += 1
        return await SystemEventRepository(session).log_event("note", "info", "x" * 200_000)

    with pytest.raises(DiskFullError):
        await full_db.run_idempotent(log_a_long_event)
    assert attempts == 1
