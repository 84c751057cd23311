"""``export-candles``: a series (or part of it) to CSV, Parquet (exact decimals) or freqtrade's
feather/parquet layout (``freqtrade_files``), streamed from the database."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer

from iftb.commands.candles import (
    End,
    Start,
    StoringExchange,
    Symbol,
    TimeframeArg,
    series_window,
    stored_series,
)
from iftb.commands.common import (
    DatabaseUrl,
    PriceTypeOption,
    console,
    fail,
    money,
    reading,
    run,
)
from iftb.data.freqtrade_files import SUFFIXES, write_freqtrade
from iftb.data.storage import OHLCVBar, OHLCVRepository

app = typer.Typer()

_EXPORT_COLUMNS = (
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades_count",
)


@app.command("export-candles")
def export_candles(
    symbol: Symbol,
    timeframe: TimeframeArg,
    out: Annotated[
        Path,
        typer.Option(
            help="Output file: .csv; .parquet (exact decimals; needs pyarrow); .feather "
            "(freqtrade's layout)."
        ),
    ],
    exchange: StoringExchange = None,
    start: Start = None,
    end: End = None,
    price_type: PriceTypeOption = "trade",
    freqtrade: Annotated[
        bool, typer.Option("--freqtrade", help="freqtrade's layout for a .parquet file too.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Write a series (or part of it) to CSV, Parquet or freqtrade's feather, streaming from
    the database."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", *SUFFIXES):
        fail(f"--out: {out.name} is not a .csv, .parquet or .feather file")
    if not out.parent.is_dir():
        fail(f"--out: no directory {out.parent}")
    as_freqtrade = suffix == ".feather" or freqtrade
    if as_freqtrade and suffix not in SUFFIXES:
        fail(f"--out: freqtrade files are .feather or .parquet, not {out.name}")
    if suffix in SUFFIXES:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            fail(f"{suffix} export needs pyarrow: pip install 'iftb[parquet]'")

    async def work() -> int:
        async with reading(database_url) as session:
            repo = OHLCVRepository(session)
            series = await stored_series(repo, symbol, timeframe, exchange, price_type)
            window = await series_window(
                repo, symbol, timeframe, series.exchange, start, end, price_type
            )
            assert window is not None  # the series is stored
            bars = repo.stream_range(
                symbol, timeframe, *window, series.exchange, price_type=price_type
            )
            if as_freqtrade:
                return write_freqtrade(out, [bar async for bar in bars])
            return await (
                _write_parquet(out, bars) if suffix == ".parquet" else _write_csv(out, bars)
            )

    written = run(work)
    console.print(f"{written:,} candles written to {out}")


async def _write_csv(out: Path, bars: AsyncIterator[OHLCVBar]) -> int:
    written = 0
    with out.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(_EXPORT_COLUMNS)
        async for bar in bars:
            writer.writerow(
                [bar.timestamp.isoformat(), *(_text(getattr(bar, c)) for c in _EXPORT_COLUMNS[1:])]
            )
            written += 1
    return written


async def _write_parquet(out: Path, bars: AsyncIterator[OHLCVBar]) -> int:
    """Decimals as exact ``decimal128(20, 8)``; written in row groups of 50k."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    price = pa.decimal128(20, 8)
    schema = pa.schema(
        [("timestamp", pa.timestamp("us", tz="UTC"))]
        + [(name, price) for name in _EXPORT_COLUMNS[1:7]]
        + [("trades_count", pa.int64())]
    )
    written = 0
    batch: list[OHLCVBar] = []
    with pq.ParquetWriter(out, schema) as writer:
        async for bar in bars:
            batch.append(bar)
            if len(batch) == 50_000:
                writer.write_table(_arrow_table(pa, schema, batch))
                written, batch = written + len(batch), []
        if batch or not written:
            writer.write_table(_arrow_table(pa, schema, batch))
    return written + len(batch)


def _arrow_table(pa: object, schema: object, bars: list[OHLCVBar]) -> object:
    columns = {name: [getattr(bar, name) for bar in bars] for name in _EXPORT_COLUMNS}
    return pa.Table.from_pydict(columns, schema=schema)  # type: ignore[attr-defined]


def _text(value: object) -> str:
    return "" if value is None else money(value)
