"""Scopes: ``scopes``, ``compare``, ``runs``, ``run show``/``run delete``, ``state`` and ``locks``.

A scope is written ``BOT/MODE`` or ``BOT/backtest/RUN`` (``Scope.parse``); ``BOT/backtest/latest``
names the bot's latest finished backtest run, and a bare ``BOT`` its live scope.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.commands.common import (
    DatabaseUrl,
    ScopeOption,
    console,
    fail,
    folding_table,
    money,
    open_database,
    parse_moment,
    reading,
    resolve_scope,
    run,
    when,
)
from iftb.data.storage import (
    DEFAULT_SCOPE,
    BacktestRun,
    BacktestRunRepository,
    BotStateRepository,
    NotFoundError,
    PairLock,
    PairLockRepository,
    Scope,
    ScopeRepository,
    ScopeStatistics,
    ScopeSummary,
    TradeStatistics,
)
from iftb.data.storage.validation import days_ago, to_decimal

app = typer.Typer()
run_app = typer.Typer(help="One backtest run: show it, or delete it with its journal rows.")
app.add_typer(run_app, name="run")

RunId = Annotated[int, typer.Argument(help="The backtest run's id (see `runs`).")]


@app.command("scopes")
def list_scopes(database_url: DatabaseUrl = None) -> None:
    """Every scope of the journal: bot, mode, backtest run, trades, open positions, last exit."""

    async def work() -> list[ScopeSummary]:
        async with reading(database_url) as session:
            return await ScopeRepository(session).list_scopes()

    found = run(work)
    table = folding_table("bot", "mode", "run", "trades", "open positions", "last exit")
    table.title = "scopes"
    for summary in found:
        scope = summary.scope
        table.add_row(
            scope.bot,
            scope.mode,
            "" if scope.run_id is None else str(scope.run_id),
            f"{summary.trades:,}",
            f"{summary.open_positions:,}",
            when(summary.last_exit),
        )
    console.print(table if found else "no scopes: the journal is empty")


@app.command()
def compare(
    scopes: Annotated[
        list[str],
        typer.Argument(
            help="Scopes: BOT/MODE, BOT/backtest/RUN or BOT/backtest/latest.", show_default=False
        ),
    ],
    days: Annotated[
        int | None, typer.Option(help="Trades closed in the last DAYS days.", min=1)
    ] = None,
    start: Annotated[str | None, typer.Option(help="Closed at or after (ISO 8601).")] = None,
    end: Annotated[str | None, typer.Option(help="Closed before (ISO 8601).")] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    starting_balance: Annotated[
        str | None, typer.Option(help="Account balance before the window (drawdown %).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Trade statistics of several scopes side by side, one column each (all time by default)."""
    if days is not None and (start or end):
        fail("--days: give either --days or --start/--end, not both")

    async def work() -> list[ScopeStatistics]:
        since = days_ago(days) if days is not None else None
        since = parse_moment("--start", start) if start else since
        until = parse_moment("--end", end) if end else None
        balance = to_decimal("--starting-balance", starting_balance) if starting_balance else None
        async with reading(database_url) as session:
            resolved = [await resolve_scope(session, text) for text in scopes]
            return await ScopeRepository(session).compare(
                resolved,
                start=since,
                end=until,
                exchange=exchange,
                symbol=symbol,
                starting_balance=balance,
            )

    console.print(comparison_table(run(work), _window_title(days, start, end, exchange, symbol)))


def comparison_table(compared: Sequence[ScopeStatistics], title: str) -> Table:
    """One row per statistic, one column per scope."""
    table = folding_table("statistic", *(str(item.scope) for item in compared), title=title)
    columns = [asdict(item.statistics) for item in compared]
    for name in columns[0] if columns else ():
        table.add_row(name.replace("_", " "), *(money(column[name]) for column in columns))
    return table


def _window_title(
    days: int | None, start: str | None, end: str | None, exchange: str | None, symbol: str | None
) -> str:
    window = (
        f"last {days} days"
        if days is not None
        else f"{start or 'the start'} to {end or 'now'}"
        if start or end
        else "all time"
    )
    where = " ".join(part for part in (exchange, symbol) if part)
    return f"scopes compared ({where + ', ' if where else ''}{window})"


@app.command()
def runs(
    bot: Annotated[str | None, typer.Option(help="Only this bot's runs.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Only this strategy's runs.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 20,
    database_url: DatabaseUrl = None,
) -> None:
    """Backtest runs, newest first, with their trade counts and net PnL."""

    async def work() -> list[BacktestRun]:
        async with reading(database_url) as session:
            return await BacktestRunRepository(session).list_runs(bot, strategy, limit=limit)

    found = run(work)
    table = folding_table("id", "bot", "strategy", "tf", "data", "status", "trades", "net pnl")
    table.title = "backtest runs"
    for item in found:
        table.add_row(
            str(item.id),
            item.bot,
            _strategy(item),
            item.timeframe,
            f"{item.data_start:%Y-%m-%d} → {item.data_end:%Y-%m-%d}",
            item.status,
            f"{item.trade_count:,}",
            str((item.summary or {}).get("net_pnl", "—")),
        )
    console.print(table if found else "no backtest runs")


@run_app.command("show")
def show_run(run_id: RunId, database_url: DatabaseUrl = None) -> None:
    """A run's settings, configuration and stored statistics."""

    async def work() -> BacktestRun:
        async with reading(database_url) as session:
            return await _existing_run(session, run_id)

    item = run(work)
    table = folding_table("field", "value", title=f"backtest run {item.id} ({item.scope})")
    fields: list[tuple[str, Any]] = [
        ("bot", item.bot),
        ("strategy", _strategy(item)),
        ("timeframe", item.timeframe),
        ("data", f"{when(item.data_start)} → {when(item.data_end)}"),
        ("status", item.status),
        ("started", when(item.started_at)),
        ("finished", when(item.finished_at)),
        ("trades", f"{item.trade_count:,}"),
        ("config", "—" if item.config is None else json.dumps(item.config, sort_keys=True)),
    ]
    if item.error_message:
        fields.append(("error", item.error_message))
    for name, value in _in_statistics_order(item.summary or {}):  # durations: in seconds
        seconds = name.endswith("_time") and isinstance(value, int | float)
        fields.append((name.replace("_", " "), timedelta(seconds=value) if seconds else value))
    for name, value in fields:
        table.add_row(name, money(value))
    console.print(table)


def _in_statistics_order(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """A run's summary in ``TradeStatistics``' field order: PostgreSQL's JSONB keeps its keys
    in its own order, SQLite's text as written, and the table must read the same on both."""
    order = {field.name: place for place, field in enumerate(dataclasses.fields(TradeStatistics))}
    return sorted(summary.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


@run_app.command("delete")
def delete_run(
    run_id: RunId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete a run with every journal row of it; live and paper rows are never touched."""

    async def find() -> BacktestRun:
        async with reading(database_url) as session:
            return await _existing_run(session, run_id)

    item = run(find)
    if not yes:
        typer.confirm(
            f"Delete backtest run {item.id} ({item.bot}, {_strategy(item)}) "
            f"and its {item.trade_count:,} trades?",
            abort=True,
        )

    async def work() -> int:
        async with open_database(database_url) as manager, manager.get_session() as session:
            return await BacktestRunRepository(session).delete(run_id)

    deleted = run(work)
    console.print(f"deleted backtest run {run_id} and its {deleted:,} trades")


@app.command()
def state(scope: ScopeOption = str(DEFAULT_SCOPE), database_url: DatabaseUrl = None) -> None:
    """A scope's bot state: every key with its value and type."""

    async def work() -> tuple[Scope, dict[str, Any]]:
        async with reading(database_url) as session:
            resolved = await resolve_scope(session, scope)
            return resolved, await BotStateRepository(session, resolved).items()

    resolved, items = run(work)
    table = folding_table("key", "value", "type", title=f"bot state of {resolved}")
    for key, value in items.items():
        table.add_row(key, *_shown(value))
    console.print(table if items else f"no bot state in {resolved}")


def _shown(value: Any) -> tuple[str, str]:
    """A state value as text, and the type it is read back as."""
    if isinstance(value, str):
        return value, "str"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), "int"
    if isinstance(value, Decimal):
        return money(value), "decimal"
    if isinstance(value, datetime):
        return value.isoformat(), "datetime"
    return json.dumps(value, sort_keys=True), "json"


@app.command()
def locks(scope: ScopeOption = str(DEFAULT_SCOPE), database_url: DatabaseUrl = None) -> None:
    """A scope's pair locks in force now, soonest to end first."""

    async def work() -> tuple[Scope, list[PairLock]]:
        async with reading(database_url) as session:
            resolved = await resolve_scope(session, scope)
            return resolved, await PairLockRepository(session, resolved).active_locks()

    resolved, found = run(work)
    table = folding_table("symbol", "side", "since", "until", "reason")
    table.title = f"active pair locks of {resolved}"
    for lock in found:
        table.add_row(
            lock.symbol, lock.side, when(lock.lock_time), when(lock.lock_end_time), lock.reason
        )
    console.print(table if found else f"no active pair locks in {resolved}")


async def _existing_run(session: AsyncSession, run_id: int) -> BacktestRun:
    found = await BacktestRunRepository(session).get(run_id)
    if found is None:
        raise NotFoundError(f"no backtest run with id {run_id}")
    return found


def _strategy(item: BacktestRun) -> str:
    return item.strategy + (f" {item.strategy_version}" if item.strategy_version else "")
