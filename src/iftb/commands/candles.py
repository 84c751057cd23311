"""Candles: ``import-candles``, ``coverage``, ``gaps``, ``resample``, ``export-candles``,
``delete-candles`` and ``chart``."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from iftb.commands.common import (
    AsJson,
    DatabaseUrl,
    Exchange,
    console,
    fail,
    folding_table,
    money,
    open_database,
    parse_moment,
    reading,
    run,
    when,
)
from iftb.data.candle_files import FORMATS, CandleChunk
from iftb.data.candle_import import ImportSummary, import_candle_file
from iftb.data.storage import Gap, OHLCVBar, OHLCVRepository, SeriesCoverage
from iftb.data.storage.repositories.market.candle_partitions import Partition

app = typer.Typer()

Symbol = Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")]
TimeframeArg = Annotated[str, typer.Argument(help="Timeframe, e.g. 1m, 1h, 1d, 1M.")]
Start = Annotated[str | None, typer.Option(help="From this open time (ISO 8601; UTC if no zone).")]
End = Annotated[str | None, typer.Option(help="To this open time, inclusive.")]
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


@app.command("import-candles")
def import_candles(
    files: Annotated[list[Path], typer.Argument(help="Candle files (.csv, .json, .zip, .gz).")],
    symbol: Annotated[str, typer.Option(help="Symbol the files hold.")],
    timeframe: Annotated[str, typer.Option(help="Timeframe the files hold.")],
    exchange: Exchange = "binance",
    file_format: Annotated[
        str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")
    ] = "auto",
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip and count malformed rows instead of stopping.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Import candle files (idempotent: re-importing updates in place) with a progress bar."""
    if file_format not in FORMATS:
        fail(f"--format: {file_format!r} is not one of {', '.join(FORMATS)}")
    for path in files:
        if not path.is_file():
            fail(f"{path}: no such file")
    summary = ImportSummary()

    async def work() -> None:
        async with open_database(database_url) as manager:
            with _progress() as progress:
                for path in files:
                    task = progress.add_task(path.name, total=path.stat().st_size)

                    def advance(chunk: CandleChunk, task: TaskID = task) -> None:
                        progress.update(task, completed=chunk.bytes_read)

                    await import_candle_file(
                        manager,
                        path,
                        symbol,
                        timeframe,
                        exchange,
                        file_format=file_format,
                        skip_invalid=skip_invalid,
                        progress=advance,
                        summary=summary,
                    )
                    progress.update(task, completed=path.stat().st_size)

    run(work)
    console.print(
        f"rows read {summary.rows:,} · inserted {summary.inserted:,} · updated "
        f"{summary.updated:,} · rejected {len(summary.rejected):,} · "
        f"{summary.rows_per_second:,.0f} rows/s"
    )
    for error in summary.rejected[:5]:
        console.print(f"  rejected {error}", highlight=False)
    if len(summary.rejected) > 5:
        console.print(f"  … and {len(summary.rejected) - 5:,} more")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@app.command()
def coverage(
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Every stored series: first and last candle, count, and how many are missing."""

    async def work() -> list[SeriesCoverage]:
        async with reading(database_url) as session:
            return await OHLCVRepository(session).get_coverage(symbol=symbol)

    series = run(work)
    if as_json:
        console.print_json(json.dumps([_coverage_json(s) for s in series]))
    else:
        console.print(coverage_table(series) if series else "no candles stored")


def coverage_table(series: list[SeriesCoverage]) -> Table:
    table = folding_table(
        "symbol", "exchange", "tf", "first", "last", "count", "missing", title="coverage"
    )
    for s in series:
        table.add_row(
            s.symbol,
            s.exchange,
            s.timeframe,
            when(s.first),
            when(s.last),
            f"{s.count:,}",
            f"{s.missing:,}",
        )
    return table


def _coverage_json(s: SeriesCoverage) -> dict[str, object]:
    return {
        "symbol": s.symbol,
        "exchange": s.exchange,
        "timeframe": s.timeframe,
        "first": s.first.isoformat(),
        "last": s.last.isoformat(),
        "count": s.count,
        "expected": s.expected,
        "missing": s.missing,
    }


@app.command()
def gaps(
    symbol: Symbol,
    timeframe: TimeframeArg,
    exchange: Exchange = "binance",
    start: Start = None,
    end: End = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Runs of missing candles of one series (within --start/--end when given)."""

    async def work() -> list[Gap]:
        lower = parse_moment("--start", start) if start else None
        upper = parse_moment("--end", end) if end else None
        async with reading(database_url) as session:
            return await OHLCVRepository(session).get_gaps(
                symbol, timeframe, exchange, lower, upper
            )

    found = run(work)
    if as_json:
        rows = [
            {"start": g.start.isoformat(), "end": g.end.isoformat(), "missing": g.missing}
            for g in found
        ]
        console.print_json(json.dumps(rows))
    else:
        console.print(gaps_table(found, f"gaps {symbol} {timeframe}") if found else "no gaps")


def gaps_table(found: list[Gap], title: str) -> Table:
    table = folding_table("first missing", "last missing", "missing", title=title)
    for gap in found:
        table.add_row(when(gap.start), when(gap.end), f"{gap.missing:,}")
    runs = f"{len(found)} gap" + ("" if len(found) == 1 else "s")
    table.caption = f"{runs}, {sum(g.missing for g in found):,} candles missing"
    return table


@app.command()
def resample(
    symbol: Symbol,
    source: Annotated[str, typer.Argument(help="Stored timeframe, e.g. 1m.")],
    target: Annotated[str, typer.Argument(help="Timeframe to build, e.g. 1h.")],
    start: Annotated[str, typer.Option(help="From this open time (ISO 8601).")],
    end: Annotated[str, typer.Option(help="To this open time, inclusive.")],
    exchange: Exchange = "binance",
    include_partial: Annotated[
        bool, typer.Option(help="Also build candles some of whose source candles are missing.")
    ] = False,
    store: Annotated[bool, typer.Option(help="Upsert the built candles into the store.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Build TARGET candles from stored SOURCE candles (in SQL); print or --store them."""

    async def work() -> list[tuple[OHLCVBar, bool]]:
        lower, upper = parse_moment("--start", start), parse_moment("--end", end)
        async with open_database(database_url) as manager, manager.get_session() as session:
            repo = OHLCVRepository(session)
            built = await repo.resample(
                symbol, source, target, lower, upper, exchange, include_partial=include_partial
            )
            if store:
                await repo.upsert_many([r.bar for r in built if r.complete])
        return [(r.bar, r.complete) for r in built]

    built = run(work)
    table = folding_table("open time", "open", "high", "low", "close", "volume", "complete")
    for bar, complete in built:
        table.add_row(
            when(bar.timestamp),
            *(money(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume)),
            "yes" if complete else "no",
        )
    console.print(table)
    stored = sum(1 for _, complete in built if complete) if store else 0
    console.print(f"{len(built)} {target} candles built" + (f", {stored} stored" if store else ""))


@app.command("export-candles")
def export_candles(
    symbol: Symbol,
    timeframe: TimeframeArg,
    out: Annotated[Path, typer.Option(help="Output file: .csv, or .parquet (needs pyarrow).")],
    exchange: Exchange = "binance",
    start: Start = None,
    end: End = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write a series (or part of it) to CSV or Parquet, streaming from the database."""
    parquet = out.suffix.lower() == ".parquet"
    if parquet:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            fail("Parquet export needs pyarrow: pip install 'iftb[parquet]'")

    async def work() -> int:
        async with reading(database_url) as session:
            repo = OHLCVRepository(session)
            window = await _window(repo, symbol, timeframe, exchange, start, end)
            if window is None:
                return 0
            bars = repo.stream_range(symbol, timeframe, *window, exchange)
            return await (_write_parquet(out, bars) if parquet else _write_csv(out, bars))

    written = run(work)
    console.print(f"{written:,} candles written to {out}")


async def _window(
    repo: OHLCVRepository,
    symbol: str,
    timeframe: str,
    exchange: str,
    start: str | None,
    end: str | None,
) -> tuple[datetime, datetime] | None:
    """``--start``/``--end``, each defaulting to the series' first/last stored candle; None
    when the series has no candles."""
    lower = parse_moment("--start", start) if start else None
    upper = parse_moment("--end", end) if end else None
    coverage = await repo.get_coverage(symbol, timeframe, exchange)
    if not coverage:
        return None
    return lower or coverage[0].first, upper or coverage[0].last


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


@app.command("delete-candles")
def delete_candles(
    symbol: Symbol,
    timeframe: TimeframeArg,
    start: Annotated[str, typer.Option(help="From this open time (ISO 8601).")],
    end: Annotated[str, typer.Option(help="To this open time, inclusive.")],
    exchange: Exchange = "binance",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete the candles of a series opening in [--start, --end] (retention)."""
    if not yes:
        typer.confirm(f"Delete {symbol} {timeframe} candles from {start} to {end}?", abort=True)

    async def work() -> int:
        lower, upper = parse_moment("--start", start), parse_moment("--end", end)
        async with open_database(database_url) as manager, manager.get_session() as session:
            return await OHLCVRepository(session).delete_range(
                symbol, timeframe, lower, upper, exchange
            )

    console.print(f"{run(work):,} candles deleted")


@app.command()
def chart(
    symbol: Symbol,
    timeframe: TimeframeArg,
    out: Annotated[Path, typer.Option(help="PNG file to write.")],
    exchange: Exchange = "binance",
    start: Start = None,
    end: End = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Draw the candles of a range to a PNG, with the gaps shaded."""
    from iftb.commands.charts import draw_candles

    async def work() -> int:
        async with reading(database_url) as session:
            repo = OHLCVRepository(session)
            window = await _window(repo, symbol, timeframe, exchange, start, end)
            if window is None:
                fail(f"no {symbol} {timeframe} candles on {exchange}")
            lower, upper = window
            bars = await repo.get_range(symbol, timeframe, lower, upper, exchange)
            found = await repo.get_gaps(symbol, timeframe, exchange, lower, upper)
        draw_candles(bars, found, timeframe, out, title=f"{symbol} {timeframe} ({exchange})")
        return len(bars)

    drawn = run(work)
    console.print(f"{drawn:,} candles drawn to {out}")


@app.command()
def partitions(
    ahead: Annotated[
        int, typer.Option(min=0, max=120, help="Create partitions for this many months ahead.")
    ] = 3,
    database_url: DatabaseUrl = None,
) -> None:
    """PostgreSQL: create the candle partitions for the coming months, and list them all."""

    async def work() -> tuple[int, list[Partition]]:
        async with open_database(database_url) as manager, manager.get_session() as session:
            repo = OHLCVRepository(session)
            created = await repo.create_partitions(datetime.now(UTC) + timedelta(days=31 * ahead))
            return created, await repo.get_partitions()

    created, found = run(work)
    if not found:
        console.print("no partitions: the candle table is partitioned on PostgreSQL only")
        return
    table = folding_table("partition", "from", "to", "rows (estimated)", title="candle partitions")
    for part in found:
        rows = f"{part.estimated_rows:,}" if part.estimated_rows >= 0 else "not analysed"
        table.add_row(part.name, when(part.lower), when(part.upper), rows)
    console.print(table)
    console.print(f"{created} partitions created")
