"""freqtrade's candle files both ways, on both backends: a series exported in its layout imports
back equal, futures candle types become price types, and a bad file is refused naming why."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow
import pyarrow.feather as feather
import pytest
from typer.testing import CliRunner, Result

from iftb.cli import app
from iftb.data.storage import DatabaseManager, OHLCVBar, OHLCVRepository
from tests.support.cli_results import ok, refused
from tests.test_ohlcv_repository import T0

Invoke = Callable[..., Awaitable[Result]]


@pytest.fixture
def invoke(database_url: str) -> Invoke:
    """The command line, run in a thread (it runs its own event loop)."""
    runner = CliRunner()

    async def run(*args: str) -> Result:
        command = [*args, "--database-url", database_url]
        return await asyncio.to_thread(runner.invoke, app, command)

    return run


def bars(price_type: str, count: int = 24) -> list[OHLCVBar]:
    return [
        OHLCVBar(
            symbol="BTCUSDT", exchange="binance", timeframe="1h", price_type=price_type,
            timestamp=T0 + timedelta(hours=h), open=Decimal("42313.12345678") + h,
            high=Decimal("42400.5") + h, low=Decimal("42200.00000001") + h,
            close=Decimal("42350.87654321") + h, volume=Decimal("0"),
        )
        for h in range(count)
    ]  # fmt: skip


async def stored(db: DatabaseManager, symbol: str, price_type: str) -> list[OHLCVBar]:
    async with db.get_session(read_only=True) as session:
        return await OHLCVRepository(session).get_range(
            symbol, "1h", T0, T0 + timedelta(days=2), price_type=price_type
        )


@pytest.mark.parametrize(
    ("name", "extra"),
    [("BTC_USDT_USDT-1h-mark.feather", ()), ("BTC_USDT_USDT-1h-mark.parquet", ("--freqtrade",))],
)
async def test_a_series_exported_for_freqtrade_imports_back_equal(
    db: DatabaseManager, invoke: Invoke, tmp_path: Path, name: str, extra: tuple[str, ...]
) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).insert_many(bars("mark"))
    out = tmp_path / "futures" / name
    out.parent.mkdir()
    written = ok(await invoke("export-candles", "BTCUSDT", "1h", "--out", str(out),
                        "--price-type", "mark", *extra))  # fmt: skip
    assert "24 candles written" in written
    table = feather.read_table(out) if out.suffix == ".feather" else None
    if table is not None:  # freqtrade's own layout: date, then float64 prices
        assert table.column_names == ["date", "open", "high", "low", "close", "volume"]
        assert table.schema.field("open").type == pyarrow.float64()
    ok(await invoke("import-candles", str(out), "--symbol", "ETHUSDT", "--timeframe", "1h"))
    back = await stored(db, "ETHUSDT", "mark")  # the price type came from the file's name
    assert back == [replace(bar, symbol="ETHUSDT") for bar in bars("mark")]


def freqtrade_table(opens: list[float]) -> pyarrow.Table:
    """A frame as freqtrade writes it: nanosecond UTC dates, float64 columns."""
    dates = [T0 + timedelta(hours=h) for h in range(len(opens))]
    return pyarrow.table({
        "date": pyarrow.array(dates, pyarrow.timestamp("ns", tz="UTC")),
        "open": opens, "high": [o + 1 for o in opens], "low": [o - 1 for o in opens],
        "close": opens, "volume": [12.5] * len(opens),
    })  # fmt: skip


async def test_freqtrade_futures_candle_types_become_price_types(
    db: DatabaseManager, invoke: Invoke, tmp_path: Path
) -> None:
    for kind, price_type in (("futures", "trade"), ("index", "index"),
                             ("premiumIndex", "premium_index")):  # fmt: skip
        path = tmp_path / f"BTC_USDT_USDT-1h-{kind}.feather"
        opens = [-0.0001, 0.0002] if kind == "premiumIndex" else [1.1 + 2.2, 42000.5]
        feather.write_feather(freqtrade_table(opens), path)
        ok(await invoke("import-candles", str(path), "--symbol", "BTCUSDT", "--timeframe", "1h"))
        found = await stored(db, "BTCUSDT", price_type)
        expected = [Decimal("-0.0001"), Decimal("0.0002")] if kind == "premiumIndex" else [
            Decimal("3.30000000"), Decimal("42000.5")]  # fmt: skip
        assert [bar.open for bar in found] == expected, kind
    listed = json.loads(ok(await invoke("coverage", "--json")))
    assert sorted(s["price_type"] for s in listed) == ["index", "premium_index", "trade"]


async def test_bad_freqtrade_files_are_refused_naming_why(invoke: Invoke, tmp_path: Path) -> None:
    async def imported(path: Path, *words: str, timeframe: str = "1h") -> None:
        """An import refused: exit 1, one ``error:`` line (after the file's progress bar)
        naming ``words``, no traceback."""
        result = await invoke(
            "import-candles", str(path), "--symbol", "X", "--timeframe", timeframe
        )
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        error = result.output[result.output.index("error: ") :]
        assert error.count("\n") == 1 and all(word in error for word in words), error

    rates = tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather"
    feather.write_feather(freqtrade_table([0.0001]), rates)
    await imported(rates, "funding rates, not candles", "import-funding-rates", timeframe="8h")
    no_volume = tmp_path / "BTC_USDT-1h.feather"
    feather.write_feather(freqtrade_table([1.0]).drop_columns(["volume"]), no_volume)
    await imported(no_volume, "no volume column")
    not_a_number = tmp_path / "ETH_USDT-1h.feather"
    feather.write_feather(freqtrade_table([2.0, float("nan")]), not_a_number)
    await imported(not_a_number, ":2:", "open")
    garbage = tmp_path / "SOL_USDT-1h.feather"
    garbage.write_bytes(b"not arrow at all")
    await imported(garbage, "cannot read it")
    assert json.loads(ok(await invoke("coverage", "--json"))) == []  # nothing of them written
    out = str(tmp_path / "x.csv")
    refused(await invoke("export-candles", "BTCUSDT", "1h", "--out", out, "--freqtrade"),
            "freqtrade files are .feather or .parquet")  # fmt: skip
