"""Funding rates: ``import-funding-rates`` and ``funding-rates`` (the history and its gaps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from iftb.commands.common import (
    AsJson,
    DatabaseUrl,
    Exchange,
    console,
    fail,
    folding_table,
    open_database,
    parse_age,
    parse_moment,
    reading,
    run,
    when,
)
from iftb.data.funding_files import FUNDING_FORMATS, FundingFormat, read_funding_rates
from iftb.data.storage import FundingRate, FundingRateRepository, Gap

app = typer.Typer()

Symbol = Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")]


@app.command("import-funding-rates")
def import_funding_rates(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Binance fundingRate archives (.zip, .csv) or freqtrade funding-rate files."
        ),
    ],
    symbol: Annotated[str, typer.Option(help="Symbol the files hold.")],
    exchange: Exchange = "binance",
    file_format: Annotated[
        str, typer.Option("--format", help=f"One of {', '.join(FUNDING_FORMATS)}.")
    ] = "auto",
    database_url: DatabaseUrl = None,
) -> None:
    """Import funding-rate files (idempotent: importing again changes nothing); each file is
    checked whole before any of it is written."""
    if file_format not in FUNDING_FORMATS:
        fail(f"--format: {file_format!r} is not one of {', '.join(FUNDING_FORMATS)}")
    chosen: FundingFormat = file_format

    async def work() -> int:
        written = 0
        async with open_database(database_url) as manager:
            for path in files:
                rates = read_funding_rates(path, symbol, exchange, chosen)
                async with manager.get_session() as session:
                    written += await FundingRateRepository(session).upsert_many(rates)
        return written

    console.print(f"{run(work):,} funding rates written")


@app.command("funding-rates")
def funding_rates(
    symbol: Symbol,
    exchange: Exchange = "binance",
    start: Annotated[str | None, typer.Option(help="From this funding time (ISO 8601).")] = None,
    end: Annotated[str | None, typer.Option(help="To this funding time, inclusive.")] = None,
    interval: Annotated[
        str, typer.Option(help="The exchange's funding interval, for the gaps (8h, 4h, 1h).")
    ] = "8h",
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """A symbol's funding-rate history (the last 30 days unless --start/--end), and the
    funding times missing from it."""

    async def work() -> tuple[list[FundingRate], list[Gap]]:
        every = parse_age("--interval", interval)
        upper = parse_moment("--end", end) if end else datetime.now(UTC)
        lower = parse_moment("--start", start) if start else upper - timedelta(days=30)
        async with reading(database_url) as session:
            repo = FundingRateRepository(session)
            rates = await repo.get_range(symbol, lower, upper, exchange)
            gaps = await repo.get_gaps(symbol, exchange, interval=every, start=lower, end=upper)
        return rates, gaps

    rates, gaps = run(work)
    if as_json:
        console.print_json(json.dumps({
            "rates": [{"funding_time": r.funding_time.isoformat(), "rate": str(r.rate),
                       "mark_price": None if r.mark_price is None else str(r.mark_price)}
                      for r in rates],
            "gaps": [{"start": g.start.isoformat(), "end": g.end.isoformat(),
                      "missing": g.missing} for g in gaps],
        }))  # fmt: skip
        return
    if not rates:
        console.print(f"no {symbol} funding rates on {exchange} in that window")
    else:
        table = folding_table("funding time", "rate", "mark price", title=f"{symbol} funding")
        for rate in rates:
            mark = "—" if rate.mark_price is None else f"{rate.mark_price:f}"
            table.add_row(when(rate.funding_time), f"{rate.rate:f}", mark)
        console.print(table)
    missing = sum(gap.missing for gap in gaps)
    console.print(f"{len(gaps)} gaps, {missing:,} funding times missing every {interval}")
