"""Time-partitioned candles (migrations 0002, 0004 and 0005): a populated database migrated
both ways with no row lost, writes into months with no partition yet (and only those months), the
partition unit kept across migrations, retention by partition, Citus readiness."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint, text
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.config import get_settings
from iftb.data.storage import (
    DatabaseManager,
    OHLCVBar,
    OHLCVModel,
    OHLCVRepository,
    ValidationError,
)
from iftb.data.storage.errors import translated_errors
from iftb.data.storage.migrations import MIGRATIONS_DIR
from iftb.data.storage.repositories.market.candle_partitions import ensure_partitions_for

ROOT = Path(__file__).resolve().parents[1]
RELKIND = text("SELECT relkind::text FROM pg_class WHERE relname = 'ohlcv'")
MONTHS = ["ohlcv_p20231101", "ohlcv_p20231201", "ohlcv_p20240101", "ohlcv_p20240201"]
CHECKSUM = text(
    "SELECT count(*) AS rows, md5(string_agg(concat_ws(',', id, symbol, exchange, timeframe, "
    "timestamp, open, high, low, close, volume, quote_volume, trades_count, created_at), '|' "
    "ORDER BY id)) AS digest FROM ohlcv"
)
SEED = text(
    "INSERT INTO ohlcv (symbol, exchange, timeframe, timestamp, open, high, low, close, volume, "
    "quote_volume, trades_count) "
    "SELECT s, 'binance', '1h', t, 100 + n % 7, 110 + n % 7, 90, 101.12345678, n * 0.001, "
    "NULLIF(n % 3, 0), n FROM generate_series(timestamptz '2023-11-20', '2024-02-10', '1 hour') "
    "WITH ORDINALITY AS g(t, n), unnest(ARRAY['BTCUSDT', 'ETHUSDT']) AS s"
)


def hourly(start: datetime, hours: int, symbol: str = "BTCUSDT") -> list[OHLCVBar]:
    return [
        OHLCVBar(symbol, "binance", "1h", start + timedelta(hours=h), Decimal(1), Decimal(2),
                 Decimal(1), Decimal(2), Decimal(h))
        for h in range(hours)
    ]  # fmt: skip


async def partitions(session: AsyncSession) -> list[str]:
    return [p.name for p in await OHLCVRepository(session).get_partitions()]


@pytest.mark.postgres_only
async def test_migration_0002_moves_a_populated_table_both_ways_losing_nothing(
    empty_database_url: str,
) -> None:
    manager = DatabaseManager(empty_database_url, auto_migrate=False)
    try:
        await manager.migrate("0001")
        async with manager._ensure_engine().begin() as connection:
            await connection.execute(SEED)
            before = (await connection.execute(CHECKSUM)).one()
        assert before.rows == 2 * (82 * 24 + 1)

        await manager.migrate("0002")
        async with manager._ensure_engine().begin() as connection:
            assert (await connection.execute(CHECKSUM)).one() == before
            kind = await connection.scalar(RELKIND)
            assert kind == "p"
        async with manager._ensure_engine().connect() as connection:
            names = [p.name for p in await _list(connection)]
        assert names[:4] == [
            "ohlcv_p20231101",
            "ohlcv_p20231201",
            "ohlcv_p20240101",
            "ohlcv_p20240201",
        ]

        await manager.migrate()  # the repositories need the latest schema
        await manager.connect()
        async with manager.get_session() as session:  # ids go on from where they were
            await OHLCVRepository(session).insert_many(hourly(datetime(2024, 3, 1, tzinfo=UTC), 1))
            newest = await session.scalar(text("SELECT max(id) FROM ohlcv"))
        assert newest == before.rows + 1
        async with manager.get_session() as session:
            await session.execute(text("DELETE FROM ohlcv WHERE id = :id"), {"id": newest})

        await manager.downgrade("0001")
        async with manager._ensure_engine().begin() as connection:
            assert (await connection.execute(CHECKSUM)).one() == before
            kind = await connection.scalar(RELKIND)
            assert kind == "r"
    finally:
        await manager.disconnect()


async def _list(connection: object) -> list:  # type: ignore[type-arg]
    from iftb.data.storage.repositories.market.candle_partitions import list_partitions

    return await list_partitions(connection)  # type: ignore[arg-type]


@pytest.mark.postgres_only
async def test_writes_into_months_with_no_partition_yet_succeed(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    far = datetime(2011, 7, 31, 20, tzinfo=UTC)  # runs into August (candles never open ahead)
    assert "ohlcv_p20110701" not in await partitions(session)
    assert await repo.insert_many(hourly(far, 10)) == 10
    assert await repo.upsert_many(hourly(datetime(2019, 12, 31, 23, tzinfo=UTC), 2)) == 2
    created = set(await partitions(session))
    assert {"ohlcv_p20110701", "ohlcv_p20110801", "ohlcv_p20191201", "ohlcv_p20200101"} <= created
    assert len(await repo.get_range("BTCUSDT", "1h", far, far + timedelta(days=1))) == 10


@pytest.mark.postgres_only
@pytest.mark.parametrize("write", ["insert_many", "upsert_many"])
async def test_a_batch_far_apart_in_time_creates_partitions_only_for_its_months(
    session: AsyncSession, write: str
) -> None:
    before = set(await partitions(session))
    batch = [
        *hourly(datetime(1970, 1, 1, tzinfo=UTC), 1),
        *hourly(datetime(2024, 5, 31, 23, tzinfo=UTC), 2),
    ]
    assert await getattr(OHLCVRepository(session), write)(batch) == 3
    assert set(await partitions(session)) - before == {
        "ohlcv_p19700101",
        "ohlcv_p20240501",
        "ohlcv_p20240601",
    }


@pytest.mark.postgres_only
async def test_two_candles_a_decade_apart_create_exactly_two_partitions(
    session: AsyncSession,
) -> None:
    before = set(await partitions(session))
    decade = [datetime(2024, 3, 5, 7, tzinfo=UTC), datetime(2034, 3, 5, 7, tzinfo=UTC)]
    assert await ensure_partitions_for(await session.connection(), decade) == 2
    assert set(await partitions(session)) - before == {"ohlcv_p20240301", "ohlcv_p20340301"}
    assert await ensure_partitions_for(await session.connection(), decade) == 0


@pytest.mark.postgres_only
async def test_a_candle_a_century_ahead_creates_no_partition_at_all(
    session: AsyncSession,
) -> None:
    before = set(await partitions(session))
    century = [datetime(2024, 3, 5, 7, tzinfo=UTC), datetime(2124, 3, 5, 7, tzinfo=UTC)]
    with pytest.raises(ValidationError, match="outside 1970 to eleven years ahead"):
        async with session.begin_nested():
            await OHLCVRepository(session).create_partitions(century[1])
    with pytest.raises(ValidationError, match="outside 1970"):
        async with session.begin_nested():
            with translated_errors():
                await ensure_partitions_for(await session.connection(), century)
    assert set(await partitions(session)) == before


@pytest.mark.postgres_only
async def test_migration_0004_keeps_the_partition_unit_the_database_was_migrated_with(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = DatabaseManager(empty_database_url, auto_migrate=False)
    try:
        monkeypatch.setenv("DB_OHLCV_PARTITION_UNIT", "year")
        get_settings.cache_clear()
        await manager.migrate("0003")
        monkeypatch.setenv("DB_OHLCV_PARTITION_UNIT", "month")
        get_settings.cache_clear()
        await manager.migrate()
        await manager.connect()
        async with manager.get_session() as session:
            await OHLCVRepository(session).insert_many(hourly(datetime(2011, 7, 1, tzinfo=UTC), 1))
            (year,) = [
                p for p in await OHLCVRepository(session).get_partitions() if p.lower.year == 2011
            ]
        assert (year.name, year.upper) == ("ohlcv_p20110101", datetime(2012, 1, 1, tzinfo=UTC))
    finally:
        get_settings.cache_clear()
        await manager.disconnect()


async def test_retention_drops_whole_partitions_and_deletes_the_rest(
    session: AsyncSession, db: DatabaseManager
) -> None:
    repo = OHLCVRepository(session)
    jan, feb = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    await repo.insert_many(hourly(jan, 24 * 60))  # January and February
    await repo.insert_many(hourly(feb, 24, symbol="ETHUSDT"))  # February is shared

    # January holds one series only: dropped whole on PostgreSQL; February: rows deleted
    removed = await repo.delete_range("BTCUSDT", "1h", jan, feb + timedelta(days=2))
    assert removed == 31 * 24 + 2 * 24 + 1  # the range is inclusive of its end
    names = await partitions(session)
    if not db.is_sqlite:
        assert "ohlcv_p20240101" not in names and "ohlcv_p20240201" in names
    assert await repo.count_range("ETHUSDT", "1h", feb, feb + timedelta(days=1)) == 24

    assert await repo.purge(feb + timedelta(days=1)) == 24  # ETH's first day
    assert (
        await repo.count_range("BTCUSDT", "1h", jan, jan + timedelta(days=90))
        == 24 * 60 - 31 * 24 - 49
    )


@pytest.mark.postgres_only
async def test_the_drop_function_given_a_symbol_alone_keeps_a_month_other_exchanges_share(
    backend: str, session: AsyncSession
) -> None:
    """Before 0005 ``exchange <> NULL`` made the other exchange's candles look like the named
    series, and the month holding them was dropped."""
    march = datetime(2024, 3, 1, tzinfo=UTC)
    bars = hourly(march, 24)
    await OHLCVRepository(session).insert_many(
        bars + [replace(bar, exchange="bybit") for bar in bars]
    )
    dropped = await session.scalar(
        text("SELECT iftb_drop_ohlcv_partitions(:start, :end, 'BTCUSDT')"),
        {"start": march, "end": datetime(2024, 4, 1, tzinfo=UTC)},
    )
    assert dropped == 0
    assert "ohlcv_p20240301" in await partitions(session)


def _columns(constraint: PrimaryKeyConstraint | UniqueConstraint) -> set[str]:
    return {column.name for column in constraint.columns}


def test_every_unique_key_of_ohlcv_holds_the_distribution_column() -> None:
    """Citus can distribute ``ohlcv`` by ``symbol`` only if each unique key contains it: checked
    statically, in the models and in every migration and reference SQL file."""
    table = OHLCVModel.__table__
    keys = [c for c in table.constraints if isinstance(c, PrimaryKeyConstraint | UniqueConstraint)]
    assert keys and all("symbol" in _columns(key) for key in keys)
    assert all(
        "symbol" in [c.name for c in index.columns] for index in table.indexes if index.unique
    )

    sources = [*(ROOT / "migrations").glob("0*.sql"), *(MIGRATIONS_DIR / "versions").glob("*.py")]
    latest_ohlcv = {}
    for source in sorted(sources):
        body = source.read_text()
        for block in re.findall(r"CREATE TABLE ohlcv \((.*?)\n\)", body, flags=re.S):
            latest_ohlcv[source.name] = block
    partitioned = [b for n, b in latest_ohlcv.items() if n.startswith(("002", "0002"))]
    assert partitioned, "migration 0002 defines the partitioned table"
    for block in partitioned:
        for key in re.findall(r"(?:PRIMARY KEY|UNIQUE) \(([^)]*)\)", block):
            assert "symbol" in key.replace(" ", "").split(","), key
