"""The candle catalog stays exact through every path that changes candles, on SQLite and
PostgreSQL: random sequences of writes and deletes checked against an independent model and
against the scans after every step; concurrent writers; the migration's backfill; the CLI."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, text
from typer.testing import CliRunner

from iftb.cli import app
from iftb.commands.demo import SAMPLE_FILE
from iftb.data.storage import (
    CandleCatalogRepository,
    CandleGapModel,
    CandleSeriesModel,
    DatabaseManager,
    DuplicateError,
    Gap,
    OHLCVBar,
    OHLCVModel,
    OHLCVRepository,
)
from iftb.data.storage.timeframes import parse_timeframe
from tests.conftest import on_citus
from tests.support.racers import race

START = datetime(2024, 1, 29, tzinfo=UTC)
"""Near a month's end, so hourly series cross partitions on PostgreSQL."""
SPAN = 120
"""Candle numbers 0..SPAN-1 are drawn; a series keeps them modulo its own span."""


@dataclass(frozen=True)
class Series:
    symbol: str
    timeframe: str
    price_type: str = "trade"
    exchange: str = "binance"
    start: datetime = START
    span: int = SPAN

    def opening(self, number: int) -> datetime:
        tf = parse_timeframe(self.timeframe)
        return tf.shift(tf.floor(self.start), number % self.span)

    def numbers(self, drawn: Iterable[int]) -> set[int]:
        return {n % self.span for n in drawn}

    def bars(self, numbers: Iterable[int], price: int = 100) -> list[OHLCVBar]:
        return [
            OHLCVBar(
                symbol=self.symbol,
                exchange=self.exchange,
                timeframe=self.timeframe,
                price_type=self.price_type,
                timestamp=self.opening(n),
                open=Decimal(price),
                high=Decimal(price + 1),
                low=Decimal(price - 1),
                close=Decimal(price),
                volume=Decimal("1.5"),
            )
            for n in sorted(self.numbers(numbers))
        ]


SERIES = (
    Series("BTCUSDT", "1h"),
    Series("BTCUSDT", "1h", price_type="mark"),
    Series("ETHUSDT", "1d"),
    Series("ETHUSDT", "1M", start=datetime(2021, 1, 1, tzinfo=UTC), span=30),
)


@dataclass
class Model:
    """What each series stores, as candle numbers: the independent oracle."""

    stored: dict[Series, set[int]] = field(default_factory=lambda: {s: set() for s in SERIES})

    def gaps(self, series: Series) -> list[Gap]:
        numbers = sorted(self.stored[series])
        return [
            Gap(series.opening(a + 1), series.opening(b - 1), b - a - 1)
            for a, b in itertools.pairwise(numbers)
            if b - a > 1
        ]


async def check(db: DatabaseManager, model: Model, window: tuple[int, int]) -> None:
    """The catalog equals the model and the scans, for every series and one window."""
    async with db.get_session(read_only=True) as session:
        repo = OHLCVRepository(session)
        listed = {(e.symbol, e.timeframe, e.price_type): e for e in await repo.get_inventory()}
        for series in SERIES:
            numbers = model.stored[series]
            entry = listed.pop((series.symbol, series.timeframe, series.price_type), None)
            if not numbers:
                assert entry is None, series
                assert (
                    await repo.get_last_timestamp(
                        series.symbol, series.timeframe, price_type=series.price_type
                    )
                    is None
                )
                continue
            assert entry is not None, series
            expected_gaps = model.gaps(series)
            assert (entry.first, entry.last) == (
                series.opening(min(numbers)),
                series.opening(max(numbers)),
            )
            assert (entry.count, entry.gaps) == (len(numbers), len(expected_gaps)), series
            assert entry.missing == sum(g.missing for g in expected_gaps)
            name = (series.symbol, series.timeframe, series.exchange)
            assert await repo.get_gaps(*name, price_type=series.price_type) == expected_gaps
            lower, upper = sorted(series.opening(n) for n in window)
            assert await repo.get_gaps(
                *name, lower, upper, price_type=series.price_type
            ) == await repo.scan_gaps(*name, lower, upper, price_type=series.price_type)
        assert not listed
        assert await CandleCatalogRepository(session).verify() == []


SERIES_INDEX = st.integers(min_value=0, max_value=len(SERIES) - 1)
NUMBERS = st.lists(st.integers(min_value=0, max_value=SPAN - 1), min_size=1, max_size=40)
RUN = st.tuples(st.integers(0, SPAN - 1), st.one_of(st.integers(1, 3), st.integers(1, 60)))
STEP = st.one_of(
    st.tuples(st.just("insert"), SERIES_INDEX, NUMBERS),
    st.tuples(st.just("upsert"), SERIES_INDEX, NUMBERS),
    st.tuples(st.just("run"), SERIES_INDEX, RUN),  # an overlapping contiguous batch
    st.tuples(st.just("delete"), SERIES_INDEX, RUN),
    st.tuples(st.just("purge"), SERIES_INDEX, st.integers(0, SPAN)),
    st.tuples(st.just("frame"), SERIES_INDEX, RUN),
)


async def apply(db: DatabaseManager, model: Model, step: tuple[str, int, object]) -> None:
    kind, index, argument = step
    series = SERIES[index]
    stored = model.stored[series]
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        if kind == "insert":
            numbers = series.numbers(argument) - stored  # type: ignore[arg-type]
            if numbers:
                await repo.insert_many(series.bars(numbers))
                stored |= numbers
        elif kind == "upsert":
            await repo.upsert_many(series.bars(argument, price=200))  # type: ignore[arg-type]
            stored |= series.numbers(argument)  # type: ignore[arg-type]
        elif kind in ("run", "frame", "delete"):
            first, length = argument  # type: ignore[misc]
            first %= series.span
            numbers = set(range(first, min(first + length, series.span)))
            if kind == "delete":
                await repo.delete_range(
                    series.symbol,
                    series.timeframe,
                    series.opening(min(numbers)),
                    series.opening(max(numbers)),
                    series.exchange,
                    price_type=series.price_type,
                )
                stored -= numbers
            elif kind == "run":
                await repo.upsert_many(series.bars(numbers, price=300))
                stored |= numbers
            else:
                frame = _frame_of(series.bars(numbers, price=400))
                await repo.upsert_frame(
                    frame, series.symbol, series.timeframe, price_type=series.price_type
                )
                stored |= numbers
        else:  # purge every series before one series' candle ``argument``
            cutoff = series.opening(min(argument, series.span - 1))  # type: ignore[type-var]
            await repo.purge(cutoff)
            for other in SERIES:
                model.stored[other] -= {n for n in model.stored[other] if other.opening(n) < cutoff}


def _frame_of(bars: list[OHLCVBar]) -> object:
    pandas = pytest.importorskip("pandas")
    return pandas.DataFrame(
        {
            name: [float(getattr(bar, name)) for bar in bars]
            for name in ("open", "high", "low", "close", "volume")
        },
        index=pandas.DatetimeIndex([bar.timestamp for bar in bars], name="timestamp"),
    )


async def empty_candles(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        for model in (OHLCVModel, CandleSeriesModel, CandleGapModel):
            await session.execute(delete(model))


@settings(
    max_examples=6 if on_citus() else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=8), window=st.tuples(RUN, RUN))
async def test_every_write_keeps_the_catalog_equal_to_the_candles(
    db: DatabaseManager,
    steps: list[tuple[str, int, object]],
    window: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    await empty_candles(db)
    model = Model()
    bounds = tuple(sorted((window[0][0], window[1][0])))
    for step in steps:
        await apply(db, model, step)
        await check(db, model, bounds)  # type: ignore[arg-type]


async def test_a_refused_batch_leaves_the_catalog_as_it_was(db: DatabaseManager) -> None:
    series = SERIES[0]
    model = Model()
    await apply(db, model, ("insert", 0, [0, 1, 5]))
    with pytest.raises(DuplicateError):
        async with db.get_session() as session:
            await OHLCVRepository(session).insert_many(series.bars([2, 3, 5]))
    await check(db, model, (0, 10))


async def test_deletes_inside_a_series_leave_one_gap_between_its_neighbours(
    db: DatabaseManager,
) -> None:
    model = Model()
    await apply(db, model, ("run", 2, (0, 20)))
    for step in (("delete", 2, (5, 1)), ("delete", 2, (9, 3)), ("delete", 2, (6, 2))):
        await apply(db, model, step)  # one candle, then three, then bridging two gaps
        await check(db, model, (0, 19))
    await apply(db, model, ("delete", 2, (0, 5)))  # the first ones: the series starts later
    await check(db, model, (0, 19))


async def test_gaps_of_windows_beyond_and_inside_a_series(db: DatabaseManager) -> None:
    model = Model()
    await apply(db, model, ("insert", 0, [10, 11, 20, 30]))
    for window in ((0, 5), (0, 10), (12, 18), (13, 13), (25, 40), (40, 50), (11, 20), (0, 60)):
        await check(db, model, window)
    async with db.get_session(read_only=True) as session:
        repo = OHLCVRepository(session)
        series = SERIES[0]
        inside = await repo.get_gaps("BTCUSDT", "1h", "binance", series.opening(13), None)
        assert inside == [
            Gap(series.opening(13), series.opening(19), 7),
            Gap(series.opening(21), series.opening(29), 9),
        ]
        assert await repo.get_gaps("BTCUSDT", "1h", "binance", series.opening(31), None) == []
        assert await repo.get_gaps("ADAUSDT", "1h", "binance", START, series.opening(2)) == [
            Gap(START, series.opening(2), 3)
        ]


RACER = """
import asyncio, sys
sys.path.insert(0, "{root}")
from tests.test_candle_catalog import SERIES
from iftb.data.storage import DatabaseManager, OHLCVRepository

async def main(url: str, offset: int) -> None:
    db = DatabaseManager(url)
    await db.connect()
    try:
        for n in range(12):
            first = (offset + 7 * n) % 100
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many(
                    SERIES[0].bars(range(first, first + 9)) + SERIES[1].bars([first])
                )
    finally:
        await db.disconnect()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_racing_writers_of_the_same_series_keep_it_exact(
    db: DatabaseManager, database_url: str, tmp_path: Path
) -> None:
    await race(tmp_path, RACER, [database_url, "0"], [database_url, "3"], [database_url, "50"])
    model = Model()
    for offset in (0, 3, 50):
        for n in range(12):
            first = (offset + 7 * n) % 100
            model.stored[SERIES[0]] |= set(range(first, first + 9))
            model.stored[SERIES[1]].add(first)
    await check(db, model, (0, SPAN - 1))


@pytest.mark.postgres_only
async def test_writers_of_different_series_do_not_wait_for_each_other(
    db: DatabaseManager,
) -> None:
    model = Model()
    async with db.get_session() as holder:
        await OHLCVRepository(holder).upsert_many(SERIES[0].bars(range(5)))
        # another series commits while the first one's writer is still open...
        async with db.get_session() as other:
            await asyncio.wait_for(OHLCVRepository(other).upsert_many(SERIES[2].bars([1])), 60)
        # ...while a writer of the same series waits for it
        same = asyncio.create_task(_upsert(db, SERIES[0].bars(range(3, 8))))
        await _until_waiting_on_a_lock(db)
        assert not same.done()
    await same
    model.stored[SERIES[0]] = set(range(8))
    model.stored[SERIES[2]] = {1}
    await check(db, model, (0, 10))


async def _upsert(db: DatabaseManager, bars: list[OHLCVBar]) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars)


async def _until_waiting_on_a_lock(db: DatabaseManager) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    for _ in range(600):
        async with db.get_session(read_only=True) as session:
            if (await session.execute(query)).scalar_one():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the second writer of the series never waited on its lock")


async def test_the_migration_fills_the_catalog_from_stored_candles(
    db: DatabaseManager, database_url: str
) -> None:
    runner = CliRunner()
    sample = Path(__file__).parent.parent / "src" / "iftb" / "sample_data" / SAMPLE_FILE
    imported = await asyncio.to_thread(
        runner.invoke,
        app,
        [
            *("import-candles", str(sample), "--symbol", "BTCUSD", "--timeframe", "1h"),
            *("--exchange", "coinbase", "--database-url", database_url),
        ],
    )
    assert imported.exit_code == 0, imported.output
    async with db.get_session() as session:
        await OHLCVRepository(session).delete_range(
            "BTCUSD", "1h", datetime(2018, 3, 1, tzinfo=UTC), datetime(2018, 3, 2, tzinfo=UTC),
            "coinbase",
        )  # fmt: skip
        await OHLCVRepository(session).upsert_many(SERIES[3].bars([0, 2, 3, 9]))
        before = await OHLCVRepository(session).get_inventory()
    assert sum(entry.gaps for entry in before) > 10
    await db.downgrade("0009")
    await db.migrate("head")
    async with db.get_session(read_only=True) as session:
        assert await OHLCVRepository(session).get_inventory() == before
        assert await CandleCatalogRepository(session).verify() == []


async def test_cli_lists_verifies_and_rebuilds_the_catalog(
    db: DatabaseManager, database_url: str
) -> None:
    model = Model()
    await apply(db, model, ("insert", 0, [0, 1, 2, 7, 8]))
    await apply(db, model, ("insert", 2, [3]))
    runner = CliRunner()

    async def invoke(*args: str) -> tuple[int, str]:
        arguments = [*args, "--database-url", database_url]
        result = await asyncio.to_thread(runner.invoke, app, arguments)
        return result.exit_code, result.output

    code, listing = await invoke("inventory", "--json")
    assert code == 0 and '"gaps": 1' in listing and '"missing": 4' in listing
    assert (await invoke("catalog", "verify"))[0] == 0
    async with db.get_session() as session:  # a write around the library
        await session.execute(
            delete(OHLCVModel).where(OHLCVModel.timestamp == SERIES[0].opening(1))
        )
    code, report = await invoke("catalog", "verify")
    assert code == 1 and "count is 5 in the catalog, 4 in the candles" in report
    assert await invoke("catalog", "rebuild") == (0, "catalog rebuilt: 2 series\n")
    model.stored[SERIES[0]].discard(1)
    await check(db, model, (0, 10))
