"""OHLCVRepository on both backends: ingest, idempotent upserts, reads, gaps, coverage, resample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    TIMEFRAMES,
    DatabaseManager,
    DuplicateError,
    Gap,
    OHLCVBar,
    OHLCVModel,
    OHLCVRepository,
    ValidationError,
    parse_timeframe,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def candle(
    at: datetime,
    *,
    timeframe: str = "1h",
    price: str = "100",
    symbol: str = "BTCUSDT",
    exchange: str = "binance",
    volume: str = "1.5",
) -> OHLCVBar:
    level = Decimal(price)
    return OHLCVBar(
        symbol=symbol,
        exchange=exchange,
        timeframe=timeframe,
        timestamp=at,
        open=level,
        high=level + 2,
        low=level - 1,
        close=level + 1,
        volume=Decimal(volume),
        quote_volume=round(Decimal(volume) * level, 8),
        trades_count=3,
    )


def hourly(count: int, skip: set[int] | frozenset[int] = frozenset(), **kw: str) -> list[OHLCVBar]:
    return [candle(T0 + timedelta(hours=h), **kw) for h in range(count) if h not in skip]


async def stored_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OHLCVModel)) or 0)


# --- writes -------------------------------------------------------------------------------


async def test_insert_many_stores_every_bar_exactly(session: AsyncSession) -> None:
    bars = hourly(24)
    bars[5] = candle(T0 + timedelta(hours=5), price="999999999990.12345678", volume="0.00000001")
    repo = OHLCVRepository(session)
    assert await repo.insert_many(bars) == 24
    assert await repo.get_range("BTCUSDT", "1h", T0, T0 + timedelta(days=1)) == bars


async def test_insert_many_of_nothing_writes_nothing(session: AsyncSession) -> None:
    assert await OHLCVRepository(session).insert_many([]) == 0


async def test_a_stored_candle_rejects_the_whole_insert_naming_it(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(3))
    with pytest.raises(DuplicateError, match=r"row 2: .*BTCUSDT binance 1h 2024-01-01T02:00"):
        await repo.insert_many([candle(T0 + timedelta(hours=h)) for h in (10, 11, 2, 12)])
    assert await stored_count(session) == 3  # the savepoint kept the first batch, nothing else


async def test_the_same_candle_twice_in_one_insert_is_a_duplicate(session: AsyncSession) -> None:
    with pytest.raises(DuplicateError, match="rows 0 and 2 are the same candle"):
        await OHLCVRepository(session).insert_many(
            [candle(T0), candle(T0 + timedelta(hours=1)), candle(T0)]
        )
    assert await stored_count(session) == 0


async def test_a_non_bar_in_the_batch_names_its_index(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="row 1: expected an OHLCVBar, got dict"):
        await OHLCVRepository(session).upsert_many([candle(T0), {"symbol": "BTCUSDT"}])  # type: ignore[list-item]
    assert await stored_count(session) == 0


async def test_an_invalid_bar_never_reaches_the_repository() -> None:
    with pytest.raises(ValidationError, match="^low: "):
        OHLCVBar(
            "BTCUSDT",
            "binance",
            "1h",
            T0,
            Decimal(1),
            Decimal(2),
            Decimal(3),
            Decimal(1),
            Decimal(1),
        )


async def test_upsert_many_inserts_then_updates_in_place(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    assert await repo.upsert_many(hourly(4)) == 4
    changed = [candle(T0 + timedelta(hours=h), price="200") for h in (2, 3, 4)]
    assert await repo.upsert_many(changed) == 3
    stored = await repo.get_range("BTCUSDT", "1h", T0, T0 + timedelta(hours=4))
    assert [bar.open for bar in stored] == [
        Decimal(100),
        Decimal(100),
        Decimal(200),
        Decimal(200),
        Decimal(200),
    ]


async def test_upsert_is_idempotent(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.upsert_many(hourly(10))
    first = await repo.get_range("BTCUSDT", "1h", T0, T0 + timedelta(hours=10))
    await repo.upsert_many(hourly(10))
    assert await repo.get_range("BTCUSDT", "1h", T0, T0 + timedelta(hours=10)) == first
    assert await stored_count(session) == 10


async def test_within_one_upsert_the_last_duplicate_wins(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    written = await repo.upsert_many(
        [candle(T0, price="10"), candle(T0, price="20"), candle(T0, price="30")]
    )
    assert written == 1
    assert [bar.open for bar in await repo.get_latest("BTCUSDT", "1h")] == [Decimal(30)]


async def test_a_failed_batch_leaves_the_unit_of_work_usable(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.insert_many(hourly(2))
        with pytest.raises(DuplicateError):
            await repo.insert_many(hourly(3))
        await repo.upsert_many([candle(T0 + timedelta(hours=7))])
    async with db.get_session() as session:
        assert await stored_count(session) == 3


# --- reads --------------------------------------------------------------------------------


async def test_get_range_is_ascending_and_inclusive_at_both_ends(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(10) + hourly(10, symbol="ETHUSDT") + hourly(10, exchange="bybit"))
    bars = await repo.get_range("BTCUSDT", "1h", T0 + timedelta(hours=2), T0 + timedelta(hours=5))
    assert [bar.timestamp.hour for bar in bars] == [2, 3, 4, 5]
    assert {(bar.symbol, bar.exchange) for bar in bars} == {("BTCUSDT", "binance")}
    assert all(bar.timestamp.tzinfo is UTC for bar in bars)


async def test_get_latest_is_newest_first_and_limited(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(10))
    latest = await repo.get_latest("BTCUSDT", "1h", limit=3)
    assert [bar.timestamp.hour for bar in latest] == [9, 8, 7]
    assert await repo.get_latest("BTCUSDT", "4h") == []


@pytest.mark.parametrize("chunk_size", [7, 10, 50, 100])
async def test_stream_range_yields_everything_in_order_in_chunks(
    session: AsyncSession, chunk_size: int
) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(50))
    streamed = [
        bar
        async for bar in repo.stream_range(
            "BTCUSDT", "1h", T0, T0 + timedelta(days=9), chunk_size=chunk_size
        )
    ]
    assert streamed == await repo.get_range("BTCUSDT", "1h", T0, T0 + timedelta(days=9))


async def test_last_timestamp_for_incremental_fetching(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    assert await repo.get_last_timestamp("BTCUSDT", "1h") is None
    await repo.insert_many(hourly(5))
    assert await repo.get_last_timestamp("BTCUSDT", "1h") == T0 + timedelta(hours=4)


async def test_delete_range_removes_only_that_range(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(10) + hourly(10, symbol="ETHUSDT"))
    assert await repo.delete_range("BTCUSDT", "1h", T0, T0 + timedelta(hours=3)) == 4
    assert await stored_count(session) == 16


async def test_count_range_counts_one_series_inclusive(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(10, skip={4}) + hourly(10, symbol="ETHUSDT"))
    assert (
        await repo.count_range("BTCUSDT", "1h", T0 + timedelta(hours=2), T0 + timedelta(hours=6))
        == 4
    )
    assert await repo.count_range("BTCUSDT", "4h", T0, T0 + timedelta(days=1)) == 0


async def test_naive_query_bounds_are_refused(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="^start: naive"):
        await OHLCVRepository(session).get_range("BTCUSDT", "1h", datetime(2024, 1, 1), T0)


async def test_an_unknown_timeframe_is_refused(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="'2h30'"):
        await OHLCVRepository(session).get_latest("BTCUSDT", "2h30")


# --- gaps ---------------------------------------------------------------------------------


async def test_no_candles_no_gaps(session: AsyncSession) -> None:
    assert await OHLCVRepository(session).get_gaps("BTCUSDT", "1h") == []


async def test_a_single_candle_has_no_gaps(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many([candle(T0)])
    assert await repo.get_gaps("BTCUSDT", "1h") == []


async def test_interior_gaps_are_runs_with_their_size(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(24, skip={3, 4, 5, 10}))
    assert await repo.get_gaps("BTCUSDT", "1h") == [
        Gap(T0 + timedelta(hours=3), T0 + timedelta(hours=5), 3),
        Gap(T0 + timedelta(hours=10), T0 + timedelta(hours=10), 1),
    ]


async def test_missing_candles_at_the_window_edges_count(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(24, skip={0, 1, 22, 23}))
    window = await repo.get_gaps(
        "BTCUSDT", "1h", start=T0, end=T0 + timedelta(hours=23, minutes=30)
    )
    assert window == [
        Gap(T0, T0 + timedelta(hours=1), 2),
        Gap(T0 + timedelta(hours=22), T0 + timedelta(hours=23), 2),
    ]


async def test_an_empty_window_is_one_gap(session: AsyncSession) -> None:
    gaps = await OHLCVRepository(session).get_gaps(
        "BTCUSDT", "1d", start=T0, end=T0 + timedelta(days=9)
    )
    assert gaps == [Gap(T0, T0 + timedelta(days=9), 10)]


async def test_monthly_gaps_follow_the_calendar(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    months = [datetime(2023, m, 1, tzinfo=UTC) for m in (1, 2, 6, 12)] + [
        datetime(2024, 3, 1, tzinfo=UTC)
    ]
    await repo.insert_many([candle(month, timeframe="1M") for month in months])
    assert await repo.get_gaps("BTCUSDT", "1M") == [
        Gap(datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 5, 1, tzinfo=UTC), 3),
        Gap(datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 11, 1, tzinfo=UTC), 5),
        Gap(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC), 2),
    ]


@pytest.mark.parametrize("code", list(TIMEFRAMES))
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_gaps_are_exactly_the_deleted_candles(
    session: AsyncSession, code: str, data: st.DataObject
) -> None:
    timeframe = parse_timeframe(code)
    first = timeframe.ceil(datetime(2021, 3, 28, 1, tzinfo=UTC))
    count = data.draw(st.integers(min_value=3, max_value=60), label="count")
    missing = data.draw(st.sets(st.integers(min_value=1, max_value=count - 2)), label="missing")
    symbol = "BTCUSDT"
    await session.execute(delete(OHLCVModel))  # each example starts from an empty table
    opens = [timeframe.shift(first, n) for n in range(count)]
    repo = OHLCVRepository(session)
    await repo.upsert_many(
        [
            candle(at, timeframe=code, symbol=symbol)
            for n, at in enumerate(opens)
            if n not in missing
        ]
    )
    found = await repo.get_gaps(symbol, code)
    found_candles = {timeframe.shift(gap.start, k) for gap in found for k in range(gap.missing)}
    assert found_candles == {opens[n] for n in missing}
    assert all(gap.end == timeframe.shift(gap.start, gap.missing - 1) for gap in found)


# --- coverage and resampling --------------------------------------------------------------


async def test_coverage_per_series(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(24, skip={5, 6}) + hourly(3, symbol="ETHUSDT"))
    coverage = {(c.symbol, c.timeframe): c for c in await repo.get_coverage()}
    btc = coverage[("BTCUSDT", "1h")]
    assert (btc.first, btc.last) == (T0, T0 + timedelta(hours=23))
    assert (btc.count, btc.expected, btc.missing) == (22, 24, 2)
    assert coverage[("ETHUSDT", "1h")].missing == 0
    assert [c.symbol for c in await repo.get_coverage(symbol="ETHUSDT")] == ["ETHUSDT"]


async def test_resample_builds_larger_candles_in_sql(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    bars = [candle(T0 + timedelta(hours=h), price=str(100 + h)) for h in range(8)]
    await repo.insert_many(bars)
    four_hourly = await repo.resample("BTCUSDT", "1h", "4h", T0, T0 + timedelta(hours=7))
    assert [r.bar.timestamp for r in four_hourly] == [T0, T0 + timedelta(hours=4)]
    first = four_hourly[0].bar
    assert (first.open, first.close) == (bars[0].open, bars[3].close)
    assert (first.high, first.low) == (max(b.high for b in bars[:4]), min(b.low for b in bars[:4]))
    assert first.volume == sum(b.volume for b in bars[:4])
    assert first.trades_count == 12
    assert first.timeframe == "4h"
    assert all(r.complete for r in four_hourly)


async def test_partial_buckets_are_excluded_or_flagged(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    await repo.insert_many(hourly(8, skip={5}))
    end = T0 + timedelta(hours=7)
    assert len(await repo.resample("BTCUSDT", "1h", "4h", T0, end)) == 1
    flagged = await repo.resample("BTCUSDT", "1h", "4h", T0, end, include_partial=True)
    assert [(r.source_count, r.expected_count, r.complete) for r in flagged] == [
        (4, 4, True),
        (3, 4, False),
    ]


async def test_daily_candles_resample_into_calendar_months(session: AsyncSession) -> None:
    repo = OHLCVRepository(session)
    days = [datetime(2024, 2, 1, tzinfo=UTC) + timedelta(days=n) for n in range(29)]
    await repo.insert_many([candle(day, timeframe="1d") for day in days])
    months = await repo.resample("BTCUSDT", "1d", "1M", days[0], days[-1])
    assert [(r.bar.timestamp, r.source_count) for r in months] == [(days[0], 29)]


@pytest.mark.parametrize(
    ("source", "target"), [("1h", "1h"), ("3d", "1M"), ("1h", "1m"), ("1M", "1w")]
)
async def test_impossible_resampling_is_refused(
    session: AsyncSession, source: str, target: str
) -> None:
    with pytest.raises(ValidationError, match="timeframe"):
        await OHLCVRepository(session).resample(
            "BTCUSDT", source, target, T0, T0 + timedelta(days=1)
        )
