"""Candles: ``import-candles``, ``gaps``, ``resample``, ``delete-candles``,
``chart`` and ``partitions`` (``export-candles``: ``candle_export``; ``inventory`` and
``coverage``: ``catalog``)."""

from __future__ import annotations

import json
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
    PriceTypeOption,
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
from iftb.data.storage import Gap, OHLCVBar, OHLCVRepository, SeriesInventory, ValidationError
from iftb.data.storage.repositories.market.candle_partitions import Partition

app = typer.Typer()

Symbol = Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")]
TimeframeArg = Annotated[str, typer.Argument(help="Timeframe, e.g. 1m, 1h, 1d, 1M.")]
Start = Annotated[str | None, typer.Option(help="From this open time (ISO 8601; UTC if no zone).")]
End = Annotated[str | None, typer.Option(help="To this open time, inclusive.")]


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
    price_type: Annotated[
        str | None,
        typer.Option(
            "--price-type",
            help="trade, mark, index or premium_index; default: from a Binance archive's "
            "directory (markPriceKlines, indexPriceKlines, premiumIndexKlines), else trade.",
        ),
    ] = None,
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
                        price_type=price_type,
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


StoringExchange = Annotated[
    str | None,
    typer.Option(help="Exchange of the series (default: the one exchange storing it)."),
]


@app.command()
def gaps(
    symbol: Symbol,
    timeframe: TimeframeArg,
    exchange: StoringExchange = None,
    start: Start = None,
    end: End = None,
    price_type: PriceTypeOption = "trade",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Runs of missing candles of one stored series (within --start/--end when given). A series
    that is not stored is an error listing those that are."""

    async def work() -> list[Gap]:
        lower = parse_moment("--start", start) if start else None
        upper = parse_moment("--end", end) if end else None
        async with reading(database_url) as session:
            repo = OHLCVRepository(session)
            series = await stored_series(repo, symbol, timeframe, exchange, price_type)
            return await repo.get_gaps(
                symbol, timeframe, series.exchange, lower, upper, price_type=price_type
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


async def stored_series(
    repo: OHLCVRepository, symbol: str, timeframe: str, exchange: str | None, price_type: str
) -> SeriesInventory:
    """The one stored series named (``exchange`` None: whichever exchange stores it); a series
    not stored, or stored on several exchanges when none is named, is a ``ValidationError``
    listing what is stored."""
    found = await repo.get_inventory(symbol, timeframe, exchange, price_type=price_type)
    if len(found) != 1:
        raise ValidationError(await _not_one_series(repo, found, symbol, timeframe))
    return found[0]


async def _not_one_series(
    repo: OHLCVRepository, matching: list[SeriesInventory], symbol: str, timeframe: str
) -> str:
    """Why a series named without its exchange is not one stored series, listing the choice."""
    if matching:
        names = ", ".join(sorted({series.exchange for series in matching}))
        return f"{symbol} {timeframe} is stored on several exchanges ({names}): pass --exchange"
    stored = await repo.get_inventory()
    shown = ", ".join(
        f"{s.symbol} {s.timeframe} {s.exchange}"
        + ("" if s.price_type == "trade" else f" {s.price_type}")
        for s in stored[:_LISTED]
    )
    more = (
        f" and {len(stored) - _LISTED:,} more (iftb-db inventory)" if len(stored) > _LISTED else ""
    )
    return f"no candles stored for {symbol} {timeframe}" + (
        f"; stored: {shown}{more}" if stored else "; the store holds no candles"
    )


_LISTED = 10


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
    price_type: PriceTypeOption = "trade",
    database_url: DatabaseUrl = None,
) -> None:
    """Build TARGET candles from stored SOURCE candles (in SQL); print or --store them."""

    async def work() -> list[tuple[OHLCVBar, bool]]:
        lower, upper = parse_moment("--start", start), parse_moment("--end", end)
        async with open_database(database_url) as manager, manager.get_session() as session:
            repo = OHLCVRepository(session)
            built = await repo.resample(
                symbol,
                source,
                target,
                lower,
                upper,
                exchange,
                include_partial=include_partial,
                price_type=price_type,
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


async def series_window(
    repo: OHLCVRepository,
    symbol: str,
    timeframe: str,
    exchange: str,
    start: str | None,
    end: str | None,
    price_type: str,
) -> tuple[datetime, datetime] | None:
    """``--start``/``--end``, each defaulting to the series' first/last stored candle; None
    when the series has no candles."""
    lower = parse_moment("--start", start) if start else None
    upper = parse_moment("--end", end) if end else None
    coverage = await repo.get_coverage(symbol, timeframe, exchange, price_type=price_type)
    if not coverage:
        return None
    return lower or coverage[0].first, upper or coverage[0].last


@app.command("delete-candles")
def delete_candles(
    symbol: Symbol,
    timeframe: TimeframeArg,
    start: Annotated[str, typer.Option(help="From this open time (ISO 8601).")],
    end: Annotated[str, typer.Option(help="To this open time, inclusive.")],
    exchange: Exchange = "binance",
    price_type: PriceTypeOption = "trade",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete the candles of a series opening in [--start, --end] (retention)."""
    if not yes:
        typer.confirm(
            f"Delete {symbol} {timeframe} {price_type} candles from {start} to {end}?", abort=True
        )

    async def work() -> int:
        lower, upper = parse_moment("--start", start), parse_moment("--end", end)
        async with open_database(database_url) as manager, manager.get_session() as session:
            return await OHLCVRepository(session).delete_range(
                symbol, timeframe, lower, upper, exchange, price_type=price_type
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
    price_type: PriceTypeOption = "trade",
    database_url: DatabaseUrl = None,
) -> None:
    """Draw the candles of a range to a PNG, with the gaps shaded."""
    from iftb.commands.charts import draw_candles

    async def work() -> int:
        async with reading(database_url) as session:
            repo = OHLCVRepository(session)
            window = await series_window(repo, symbol, timeframe, exchange, start, end, price_type)
            if window is None:
                fail(f"no {symbol} {timeframe} {price_type} candles on {exchange}")
            lower, upper = window
            bars = await repo.get_range(
                symbol, timeframe, lower, upper, exchange, price_type=price_type
            )
            found = await repo.get_gaps(
                symbol, timeframe, exchange, lower, upper, price_type=price_type
            )
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
