"""Trading journal: ``stats``, ``rollup-daily`` and ``equity``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from iftb.commands.common import (
    DEFAULT_SCOPE_TEXT,
    DatabaseUrl,
    Exchange,
    ScopeOption,
    console,
    fail,
    folding_table,
    money,
    open_database,
    parse_day,
    reading,
    resolve_scope,
    run,
)
from iftb.data.storage import DailyPerformance, DailyPerformanceRepository, TradeRepository
from iftb.data.storage import TradeStatistics as Statistics
from iftb.data.storage.scopes import SCOPE_COLUMNS
from iftb.data.storage.validation import days_ago, to_decimal

app = typer.Typer()

Balance = Annotated[
    str | None,
    typer.Option(help="Starting balance (for percentages); default: the day before's ending."),
]


@app.command()
def stats(
    days: Annotated[int, typer.Option(help="Trades closed in the last DAYS days.")] = 30,
    exchange: Exchange = "binance",
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    starting_balance: Annotated[
        str | None, typer.Option(help="Account balance before the window (drawdown %).")
    ] = None,
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """Performance statistics of one scope's closed trades, computed in SQL."""

    async def work() -> Statistics:
        balance = to_decimal("--starting-balance", starting_balance) if starting_balance else None
        async with reading(database_url) as session:
            trades = TradeRepository(session, await resolve_scope(session, scope))
            return await trades.get_statistics(days, exchange, symbol, starting_balance=balance)

    window = f"{scope}, {exchange}{' ' + symbol if symbol else ''}, last {days} days"
    console.print(statistics_table(run(work), f"trade statistics ({window})"))


def statistics_table(statistics: Statistics, title: str) -> Table:
    table = folding_table("statistic", "value", title=title)
    for name, value in asdict(statistics).items():
        table.add_row(name.replace("_", " "), money(value))
    return table


@app.command("rollup-daily")
def rollup_daily(
    day: Annotated[str | None, typer.Option("--date", help="UTC day (default: yesterday).")] = None,
    exchange: Exchange = "binance",
    starting_balance: Balance = None,
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """Compute and store one day's performance row of a scope from the trades closed that day."""

    async def work() -> DailyPerformance:
        target = parse_day("--date", day) if day else datetime.now(UTC).date() - timedelta(days=1)
        balance = to_decimal("--starting-balance", starting_balance) if starting_balance else None
        async with open_database(database_url) as manager, manager.get_session() as session:
            daily = DailyPerformanceRepository(session, await resolve_scope(session, scope))
            return await daily.rollup(target, exchange, balance)

    row = run(work)
    table = folding_table("field", "value", title=f"daily performance {row.date} ({row.exchange})")
    for name, value in asdict(row).items():
        if name not in ("id", "created_at", "updated_at", "date", "exchange", *SCOPE_COLUMNS):
            table.add_row(name.replace("_", " "), money(value))
    console.print(table)


@app.command()
def equity(
    out: Annotated[Path, typer.Option(help="PNG file to write.")],
    days: Annotated[int, typer.Option(help="The last DAYS days.")] = 365,
    exchange: Exchange = "binance",
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """Draw a scope's equity curve (daily ending balances) to a PNG."""
    from iftb.commands.charts import draw_equity

    async def work() -> list[tuple[date, Decimal]]:
        end = datetime.now(UTC).date()
        async with reading(database_url) as session:
            repo = DailyPerformanceRepository(session, await resolve_scope(session, scope))
            # a window reaching before 1970 starts there (dates before it are refused)
            return await repo.get_equity_curve(days_ago(days).date(), end, exchange)

    curve = run(work)
    if not curve:
        fail(
            f"no daily performance rows of {scope} on {exchange} in the last {days} days: "
            "run rollup-daily"
        )
    draw_equity(curve, out, f"equity ({exchange}): {money(curve[0][1])} → {money(curve[-1][1])}")
    console.print(f"{len(curve)} days drawn to {out}")
