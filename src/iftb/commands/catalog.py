"""The candle inventory: ``inventory`` (every stored series, from the catalog; ``coverage`` is
its earlier name), and ``catalog verify`` / ``catalog rebuild`` (checking and mending the catalog
against the candles)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from iftb.commands.common import (
    AsJson,
    DatabaseUrl,
    console,
    fail,
    folding_table,
    open_database,
    reading,
    run,
    when,
)
from iftb.data.storage import (
    CandleCatalogRepository,
    CatalogDifference,
    OHLCVRepository,
    SeriesInventory,
)

app = typer.Typer()
catalog = typer.Typer(help="Check the candle catalog against the candles, or rebuild it.")
app.add_typer(catalog, name="catalog")


@app.command()
def inventory(
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Only this timeframe.")] = None,
    price_type: Annotated[
        str | None, typer.Option("--price-type", help="Only this price type.")
    ] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Every stored candle series with its time range, candles, missing candles and gaps, read
    from the catalog (instant at any size)."""

    async def work() -> list[SeriesInventory]:
        async with reading(database_url) as session:
            return await OHLCVRepository(session).get_inventory(
                symbol, timeframe, exchange, price_type=price_type
            )

    series = run(work)
    if as_json:
        console.print_json(json.dumps([_inventory_json(s) for s in series]))
    else:
        console.print(inventory_table(series) if series else "no candles stored")


app.command("coverage", help="The same listing as `inventory` (its earlier name).")(inventory)


def inventory_table(series: list[SeriesInventory]) -> Table:
    table = folding_table(
        "pair", "exchange", "tf", "type", "from", "to", "candles", "missing", "gaps",
        title=f"{len(series):,} candle series",
    )  # fmt: skip
    for s in series:
        table.add_row(
            s.symbol,
            s.exchange,
            s.timeframe,
            s.price_type,
            when(s.first),
            when(s.last),
            f"{s.count:,}",
            f"{s.missing:,}",
            f"{s.gaps:,}",
        )
    return table


@catalog.command()
def verify(as_json: AsJson = False, database_url: DatabaseUrl = None) -> None:
    """Recompute every series from the candles and report each difference from the catalog;
    exit 1 when there is one (scans every candle)."""

    async def work() -> list[CatalogDifference]:
        async with reading(database_url) as session:
            return await CandleCatalogRepository(session).verify()

    differences = run(work)
    if as_json:
        console.print_json(json.dumps([_difference_json(d) for d in differences]))
    else:
        for difference in differences:
            console.print(str(difference), highlight=False, soft_wrap=True)
    if differences:
        fail(
            f"the catalog differs from the candles in {len(differences)} figure(s); "
            "`iftb-db catalog rebuild` recomputes it"
        )
    if not as_json:
        console.print("the catalog matches the candles")


@catalog.command()
def rebuild(database_url: DatabaseUrl = None) -> None:
    """Recompute the catalog from the candles, in one transaction (scans every candle; candle
    writers wait until it is done)."""

    async def work() -> int:
        async with open_database(database_url) as db, db.get_session() as session:
            with console.status("rebuilding the candle catalog"):
                return await CandleCatalogRepository(session).rebuild()

    console.print(f"catalog rebuilt: {run(work):,} series")


def _inventory_json(s: SeriesInventory) -> dict[str, object]:
    return {
        "symbol": s.symbol,
        "exchange": s.exchange,
        "timeframe": s.timeframe,
        "price_type": s.price_type,
        "first": s.first.isoformat(),
        "last": s.last.isoformat(),
        "count": s.count,
        "expected": s.expected,
        "missing": s.missing,
        "gaps": s.gaps,
    }


def _difference_json(d: CatalogDifference) -> dict[str, object]:
    key = d.series
    return {
        "symbol": key.symbol,
        "exchange": key.exchange,
        "timeframe": key.timeframe,
        "price_type": key.price_type,
        "field": d.field,
        "catalog": d.catalog,
        "scanned": d.scanned,
    }
