"""Candles as pandas and Polars DataFrames, both ways, on both backends (the ``frames`` extra)."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")

from iftb.data.storage import (  # noqa: E402
    DailyPerformance,
    DailyPerformanceRepository,
    DatabaseManager,
    FundingRate,
    FundingRateRepository,
    OHLCVBar,
    OHLCVRepository,
    TradeRepository,
    ValidationError,
)
from iftb.data.storage.repositories.market.candle_frames import (  # noqa: E402
    FramesUnavailableError,
    records_frame,
    require,
)
from tests.factories import make_trade  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)
END = T0 + timedelta(days=30)
COLUMNS = ["open", "high", "low", "close", "volume", "quote_volume", "trades_count"]
PRICES = [
    "12345.12345678",
    "0.00000001",
    "999999999999.99999999",
    "1.1",
    "67012.5",
    "0.30000001",
    "42",
]


def bars(count: int = 7, *, symbol: str = "BTCUSDT") -> list[OHLCVBar]:
    """Candles whose prices need every digit (down to 10⁻⁸, up to 12 integer digits), one
    without a quote volume and one without a trade count."""
    made = []
    for hour in range(count):
        level = Decimal(PRICES[hour % len(PRICES)])
        made.append(
            OHLCVBar(
                symbol=symbol,
                exchange="binance",
                timeframe="1h",
                timestamp=T0 + timedelta(hours=hour),
                open=level,
                high=level,
                low=level,
                close=level,
                volume=Decimal("1.23456789") * hour,
                quote_volume=None if hour == 2 else Decimal("98765.4321"),
                trades_count=None if hour == 3 else hour * 10,
            )
        )
    return made


async def stored(db: DatabaseManager, symbol: str = "BTCUSDT") -> list[OHLCVBar]:
    async with db.get_session() as session:
        return await OHLCVRepository(session).get_range(symbol, "1h", T0, END)


async def seeded(db: DatabaseManager, count: int = 7) -> list[OHLCVBar]:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(count))
    return bars(count)


async def frame_of(db: DatabaseManager, **options: Any) -> Any:
    async with db.get_session() as session:
        return await OHLCVRepository(session).get_frame("BTCUSDT", "1h", T0, END, **options)


async def upsert(db: DatabaseManager, frame: Any, symbol: str = "ETHUSDT", **kw: Any) -> int:
    async with db.get_session() as session:
        return await OHLCVRepository(session).upsert_frame(frame, symbol, "1h", **kw)


def values(bar: OHLCVBar) -> tuple[Any, ...]:
    return (bar.timestamp, *(getattr(bar, name) for name in COLUMNS))


# --- reading -------------------------------------------------------------------------------


async def test_an_exact_frame_holds_every_digit(db: DatabaseManager) -> None:
    expected = await seeded(db)
    frame = await frame_of(db, exact=True)
    assert all(frame[name].dtype == pd.ArrowDtype(pa.decimal128(20, 8)) for name in COLUMNS[:6])
    for row, bar in zip(frame.itertuples(), expected, strict=True):
        assert row.Index == bar.timestamp
        for name in COLUMNS[:5]:
            assert getattr(row, name) == getattr(bar, name)
        assert (None if pd.isna(row.quote_volume) else row.quote_volume) == bar.quote_volume


async def test_float_values_are_float_of_the_stored_decimal(db: DatabaseManager) -> None:
    expected = await seeded(db)
    frame = await frame_of(db)
    assert all(frame[name].dtype == "float64" for name in COLUMNS[:6])
    for row, bar in zip(frame.itertuples(), expected, strict=True):
        for name in COLUMNS[:5]:
            assert getattr(row, name) == float(getattr(bar, name))
    assert math.isnan(frame["quote_volume"].iloc[2])
    assert frame["trades_count"].dtype == "Int64"
    assert pd.isna(frame["trades_count"].iloc[3]) and frame["trades_count"].iloc[4] == 40


async def test_the_index_is_aware_utc_open_time_in_order(db: DatabaseManager) -> None:
    expected = await seeded(db)
    frame = await frame_of(db)
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC" and frame.index.name == "timestamp"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert list(frame.index) == [bar.timestamp for bar in expected]
    assert list(frame.columns) == COLUMNS


async def test_polars_frames_are_sorted_by_a_utc_timestamp_column(db: DatabaseManager) -> None:
    expected = await seeded(db)
    frame = await frame_of(db, library="polars")
    assert frame.columns == ["timestamp", *COLUMNS]
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert frame.get_column("timestamp").is_sorted()
    assert frame.get_column("timestamp").to_list() == [bar.timestamp for bar in expected]
    assert frame.get_column("open").to_list() == [float(bar.open) for bar in expected]
    exact = await frame_of(db, library="polars", exact=True)
    assert isinstance(exact.schema["open"], pl.Decimal)
    assert exact.get_column("open").to_list() == [bar.open for bar in expected]


async def test_an_empty_range_gives_an_empty_frame_of_the_same_shape(db: DatabaseManager) -> None:
    await seeded(db)
    async with db.get_session() as session:
        repository = OHLCVRepository(session)
        later = T0 + timedelta(days=400)
        frame = await repository.get_frame("BTCUSDT", "1h", later, later + timedelta(days=1))
        polars = await repository.get_frame(
            "BTCUSDT", "1h", later, later + timedelta(days=1), library="polars", exact=True
        )
    assert len(frame) == 0 and list(frame.columns) == COLUMNS
    assert str(frame.index.dtype) == "datetime64[us, UTC]"
    assert all(frame[name].dtype == "float64" for name in COLUMNS[:6])
    assert polars.height == 0 and polars.columns == ["timestamp", *COLUMNS]
    assert isinstance(polars.schema["close"], pl.Decimal)


async def test_only_the_asked_series_and_range_are_read(db: DatabaseManager) -> None:
    await seeded(db)
    async with db.get_session() as session:
        repository = OHLCVRepository(session)
        await repository.upsert_many(bars(3, symbol="ETHUSDT"))
        frame = await repository.get_frame(
            "BTCUSDT", "1h", T0 + timedelta(hours=1), T0 + timedelta(hours=4)
        )
        mark = await repository.get_frame("BTCUSDT", "1h", T0, END, price_type="mark")
    assert list(frame.index) == [T0 + timedelta(hours=h) for h in range(1, 5)]
    assert len(mark) == 0


# --- writing -------------------------------------------------------------------------------


async def test_an_exact_frame_round_trips_unchanged(db: DatabaseManager) -> None:
    expected = await seeded(db)
    for library in ("pandas", "polars"):
        frame = await frame_of(db, exact=True, library=library)
        assert await upsert(db, frame, symbol=f"{library.upper()}USDT") == len(expected)
        again = await stored(db, f"{library.upper()}USDT")
        assert [values(bar) for bar in again] == [values(bar) for bar in expected]


async def test_a_float_frame_is_stored_by_each_floats_shortest_repr(db: DatabaseManager) -> None:
    times = pd.date_range(T0, periods=3, freq="h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(
        {
            "open": [0.1, 67012.5, 3.3],
            "high": [0.2, 67100.25, 3.3],
            "low": [0.05, 67000.0, 3.3],
            "close": [0.15, 67050.75, 3.3],
            "volume": [12.34567891, 0.0, 7.0],
            "quote_volume": [1.5, float("nan"), 23.1],
            "trades_count": [1, 2, 3],
        },
        index=times,
    )
    assert await upsert(db, frame) == 3
    got = await stored(db, "ETHUSDT")
    assert [bar.open for bar in got] == [Decimal("0.1"), Decimal("67012.5"), Decimal("3.3")]
    assert got[0].volume == Decimal("12.34567891") and got[1].quote_volume is None
    assert [bar.trades_count for bar in got] == [1, 2, 3]


async def test_a_polars_float_frame_is_written_too(db: DatabaseManager) -> None:
    await seeded(db)
    frame = await frame_of(db, library="polars")
    small = frame.filter(pl.col("open") < 1e11)  # float(999999999999.99999999) is 1e12
    assert await upsert(db, small) == small.height
    got = await stored(db, "ETHUSDT")
    assert [float(bar.open) for bar in got] == small.get_column("open").to_list()
    with pytest.raises(ValidationError, match=r"row 2: open: 1000000000000.0 does not fit"):
        await upsert(db, frame, symbol="SOLUSDT")


async def test_writing_again_updates_in_place(db: DatabaseManager) -> None:
    await seeded(db)
    frame = await frame_of(db)
    frame = frame[frame["open"] < 1e11].copy()
    await upsert(db, frame, symbol="BTCUSDT")
    frame["close"] = frame["low"]
    assert await upsert(db, frame, symbol="BTCUSDT") == len(frame)
    got = [bar for bar in await stored(db) if bar.timestamp in frame.index]
    assert len(got) == len(frame) and all(bar.close == bar.low for bar in got)


async def test_an_empty_frame_writes_nothing(db: DatabaseManager) -> None:
    frame = await frame_of(db)
    assert await upsert(db, frame) == 0


# --- bad input: a clear error, nothing written ----------------------------------------------


def good_frame() -> Any:
    times = pd.date_range(T0, periods=4, freq="h", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": [100.0, 101.0, 102.0, 103.0],
            "high": [101.0, 102.0, 103.0, 104.0],
            "low": [99.0, 100.0, 101.0, 102.0],
            "close": [100.5, 101.5, 102.5, 103.5],
            "volume": [1.0, 2.0, 3.0, 4.0],
            "quote_volume": [100.0, 200.0, 300.0, 400.0],
            "trades_count": [1, 2, 3, 4],
        },
        index=times,
    )


def naive(frame: Any) -> Any:
    return frame.tz_localize(None)


def shuffled(frame: Any) -> Any:
    return frame.iloc[[0, 2, 1, 3]]


def doubled(frame: Any) -> Any:
    return frame.iloc[[0, 1, 1, 2]]


def with_value(name: str, row: int, value: float) -> Any:
    def change(frame: Any) -> Any:
        frame = frame.copy()
        frame.iloc[row, frame.columns.get_loc(name)] = value
        return frame

    return change


BAD_FRAMES = {
    "missing column": (lambda frame: frame.drop(columns=["close"]), r"close: the frame has no"),
    "naive index": (naive, r"naive open times"),
    "not monotonic": (shuffled, r"row 2: timestamp: open times must increase"),
    "duplicate open times": (doubled, r"rows 1 and 2 are the same candle"),
    "NaN price": (with_value("open", 2, float("nan")), r"row 2: open: NaN is not a finite"),
    "infinite price": (with_value("high", 1, math.inf), r"row 1: high: Infinity is not a fin"),
    "low above close": (with_value("low", 3, 103.6), r"row 3: low: 103.6 must be ≤"),
    "more than 8 places": (with_value("open", 1, 0.1 + 0.2), r"row 1: open: .* more than 8"),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
async def test_a_bad_frame_is_refused_whole(db: DatabaseManager, case: str) -> None:
    await seeded(db)
    before = await stored(db, "ETHUSDT")
    await upsert(db, good_frame().iloc[:1])
    change, message = BAD_FRAMES[case]
    with pytest.raises(ValidationError, match=message):
        await upsert(db, change(good_frame()))
    after = await stored(db, "ETHUSDT")
    assert len(after) == len(before) + 1


async def test_an_error_names_the_row_and_its_open_time(db: DatabaseManager) -> None:
    frame = with_value("low", 3, 103.6)(good_frame())
    with pytest.raises(ValidationError, match=r"open time 2024-01-01T03:00:00\+00:00") as error:
        await upsert(db, frame)
    assert error.value.index == 3 and error.value.field == "low"
    assert await stored(db, "ETHUSDT") == []


async def test_a_price_type_not_in_the_list_is_refused(db: DatabaseManager) -> None:
    with pytest.raises(ValidationError, match=r"price_type: 'last' is not one of"):
        await upsert(db, good_frame(), price_type="last")
    assert await stored(db, "ETHUSDT") == []


async def test_a_polars_frame_with_naive_times_is_refused(db: DatabaseManager) -> None:
    frame = pl.from_pandas(good_frame().reset_index()).with_columns(
        pl.col("timestamp").dt.replace_time_zone(None)
    )
    with pytest.raises(ValidationError, match=r"naive open times"):
        await upsert(db, frame)
    assert await stored(db, "ETHUSDT") == []


async def test_a_candle_from_the_future_is_refused(db: DatabaseManager) -> None:
    later = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=5)
    frame = good_frame()
    frame.index = pd.date_range(later, periods=4, freq="h", tz="UTC", name="timestamp")
    with pytest.raises(ValidationError, match=r"row 0: timestamp: .* opens in the future"):
        await upsert(db, frame)


# --- the small tables and the extra ---------------------------------------------------------


async def test_funding_rates_trades_and_the_equity_curve_as_frames(db: DatabaseManager) -> None:
    rates = [
        FundingRate("BTCUSDT", T0 + timedelta(hours=8 * n), Decimal("0.0001")) for n in range(3)
    ]
    async with db.get_session() as session:
        await FundingRateRepository(session).upsert_many(rates)
        await TradeRepository(session).insert(make_trade())
        await DailyPerformanceRepository(session).upsert(
            DailyPerformance(
                date=date(2024, 1, 1), exchange="binance", ending_balance=Decimal("1000.5")
            )
        )
    async with db.get_session() as session:
        read = await FundingRateRepository(session).get_range("BTCUSDT", T0, END)
        trades = await TradeRepository(session).get_recent()
        curve = await DailyPerformanceRepository(session).get_equity_curve(
            date(2023, 12, 1), date(2024, 2, 1)
        )
    funding = records_frame(read, index="funding_time")
    assert str(funding.index.dtype) == "datetime64[us, UTC]" and len(funding) == 3
    assert funding["rate"].tolist() == [0.0001] * 3
    exact = records_frame(read, library="polars", exact=True, index="funding_time")
    assert exact.get_column("rate").to_list() == [Decimal("0.0001")] * 3
    assert len(records_frame(trades)) == 1
    equity = records_frame(curve, columns=("date", "balance"), index="date")
    assert equity["balance"].tolist() == [1000.5]


def test_a_missing_library_names_the_extra() -> None:
    with pytest.raises(FramesUnavailableError, match=r"pip install 'iftb\[frames\]'"):
        require("pandas_that_is_not_installed")


def test_importing_the_storage_layer_does_not_import_pandas() -> None:
    code = (
        "import sys, iftb.data.storage; "
        "sys.exit('pandas' in sys.modules or 'polars' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
