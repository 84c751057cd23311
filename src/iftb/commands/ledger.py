"""The futures ledger: ``ledger`` (one trade's orders, fills and funding), ``funding`` (totals
per symbol and day) and ``reconcile`` (the exchange's positions against the ledger's).

``reconcile`` exits 0 when the ledger and the exchange agree, 3 when they differ (so a cron job
or a bot's health check can act on it), and 1 on bad input, like every command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

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
    parse_moment,
    reading,
    resolve_scope,
    run,
)
from iftb.data.storage import (
    ExchangePosition,
    Fill,
    FundingPayment,
    FundingTotal,
    LedgerRepository,
    NotFoundError,
    Order,
    PositionDifference,
    Scope,
    Trade,
    TradeRepository,
    ValidationError,
)
from iftb.data.storage.validation import EARLIEST, days_ago, to_decimal

app = typer.Typer()

DIFFERENCES_EXIT = 3
"""``reconcile``'s exit code when the ledger and the exchange disagree."""

DEFAULT_FUNDING_DAYS = 7
_POSITION_FIELDS = ("symbol", "side", "size", "entry_price")


@dataclass(frozen=True, slots=True)
class TradeLedger:
    """What ``ledger`` shows of one trade."""

    scope: Scope
    orders: list[Order]
    fills: list[Fill]
    funding: list[FundingPayment]
    trade: Trade | None


@app.command("ledger")
def show_ledger(
    trade_id: Annotated[str, typer.Argument(help="The trade's id (its orders name it).")],
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """One trade's orders, fills and funding payments, then its fees, funding and realized PnL."""

    async def work() -> TradeLedger:
        async with reading(database_url) as session:
            resolved = await resolve_scope(session, scope)
            ledger = LedgerRepository(session, resolved)
            found = TradeLedger(
                resolved,
                await ledger.orders_of_trade(trade_id),
                await ledger.fills_of_trade(trade_id),
                await ledger.funding_of_trade(trade_id),
                await TradeRepository(session, resolved).get_by_trade_id(trade_id),
            )
        if not found.orders and found.trade is None:
            raise NotFoundError(f"no trade {trade_id!r} in {resolved}: no order names it")
        return found

    found = run(work)
    console.print(_orders_table(found))
    console.print(_fills_table(found) if found.fills else f"no fills of {trade_id} yet")
    console.print(_funding_table(found) if found.funding else f"no funding payments of {trade_id}")
    console.print(_totals_table(trade_id, found.trade))


def _orders_table(found: TradeLedger) -> Table:
    table = folding_table(
        "client id", "side", "type", "qty", "filled", "avg price", "status", title="orders"
    )
    for order in found.orders:
        table.add_row(
            order.client_order_id,
            order.side,
            order.order_type,
            money(order.quantity),
            money(order.filled_quantity),
            money(order.average_fill_price),
            order.status,
        )
    return table


def _fills_table(found: TradeLedger) -> Table:
    table = folding_table(
        "id", "time", "side", "price", "qty", "fee", "fee asset", "maker", title="fills"
    )
    for fill in found.fills:
        table.add_row(
            fill.exchange_fill_id,
            _moment(fill.filled_at),
            fill.side,
            money(fill.price),
            money(fill.quantity),
            money(fill.fee),
            _fee_asset(fill),
            "—" if fill.is_maker is None else "yes" if fill.is_maker else "no",
        )
    return table


def _fee_asset(fill: Fill) -> str:
    """The fee's asset, with its quote value when it is another asset (what the totals count)."""
    if fill.fee_quote is None:
        return fill.fee_asset or "quote"
    return f"{fill.fee_asset} ({money(fill.fee_quote)} quote)"


def _funding_table(found: TradeLedger) -> Table:
    table = folding_table("time", "rate", "amount", title="funding payments")
    for payment in found.funding:
        table.add_row(_moment(payment.funding_time), money(payment.rate), money(payment.amount))
    return table


def _totals_table(trade_id: str, trade: Trade | None) -> Table | str:
    if trade is None:
        return f"trade {trade_id} has no fills yet: no totals"
    title = f"trade {trade_id} ({trade.symbol} {trade.side}, {trade.action})"
    table = folding_table("total", "value", title=title)
    table.add_row("fees", money(trade.fee))
    table.add_row("funding", money(trade.funding))
    table.add_row("realized pnl", money(trade.realized_pnl))
    return table


def _moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def funding(
    days: Annotated[
        int | None,
        typer.Option(help=f"The last DAYS days (default {DEFAULT_FUNDING_DAYS}).", min=1),
    ] = None,
    start: Annotated[str | None, typer.Option(help="Paid at or after (ISO 8601).")] = None,
    end: Annotated[str | None, typer.Option(help="Paid before (ISO 8601).")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """A scope's funding per symbol and UTC day (received positive, paid negative)."""
    if days is not None and (start or end):
        fail("--days: give either --days or --start/--end, not both")

    async def work() -> tuple[Scope, datetime, datetime, list[FundingTotal]]:
        since, until = _window(days, start, end)
        async with reading(database_url) as session:
            resolved = await resolve_scope(session, scope)
            totals = await LedgerRepository(session, resolved).funding_totals(since, until, symbol)
        return resolved, since, until, totals

    resolved, since, until, totals = run(work)
    window = f"{_moment(since)} to {_moment(until)}"
    if not totals:
        where = f"{symbol} " if symbol else ""
        console.print(f"no {where}funding payments in {resolved} from {window}")
        return
    console.print(_funding_totals_table(totals, f"funding of {resolved}, {window}"))


def _window(days: int | None, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    if start is None and end is None:
        return days_ago(days or DEFAULT_FUNDING_DAYS), now
    since = parse_moment("--start", start) if start else EARLIEST
    until = parse_moment("--end", end) if end else now
    if until <= since:
        raise ValidationError(f"--end: {end or 'now'} is not after --start {start}", field="end")
    return since, until


def _funding_totals_table(totals: list[FundingTotal], title: str) -> Table:
    """One row per day and symbol, then each symbol's total over the window."""
    table = folding_table("day", "symbol", "payments", "amount", title=title)
    for total in totals:
        table.add_row(total.day.isoformat(), total.symbol, str(total.payments), money(total.amount))
    table.add_section()
    by_symbol: dict[str, tuple[Decimal, int]] = {}
    for total in totals:
        amount, payments = by_symbol.get(total.symbol, (Decimal(0), 0))
        by_symbol[total.symbol] = (amount + total.amount, payments + total.payments)
    for name, (amount, payments) in sorted(by_symbol.items()):
        table.add_row("total", name, str(payments), money(amount))
    return table


@app.command()
def reconcile(
    file: Annotated[
        Path,
        typer.Argument(
            help='JSON list of the exchange\'s positions: {"symbol", "side" (long|short), '
            '"size", "entry_price" (optional)}; numbers as JSON numbers or strings.',
            show_default=False,
        ),
    ],
    exchange: Exchange = "binance",
    record: Annotated[
        bool, typer.Option("--record", help="Log each difference as a warning system event.")
    ] = False,
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """Compare the exchange's open positions (FILE) with the ledger's. Exit code 0: they agree;
    3: they differ (the differences are listed); 1: bad input."""
    try:
        reported = read_positions(file)
    except ValidationError as exc:
        fail(str(exc))

    async def work() -> tuple[Scope, list[PositionDifference]]:
        if not record:
            async with reading(database_url) as session:
                resolved = await resolve_scope(session, scope)
                ledger = LedgerRepository(session, resolved)
                return resolved, await ledger.reconcile(reported, exchange)
        async with open_database(database_url) as manager, manager.get_session() as session:
            resolved = await resolve_scope(session, scope)
            ledger = LedgerRepository(session, resolved)
            return resolved, await ledger.reconcile(reported, exchange, record_events=True)

    resolved, differences = run(work)
    if not differences:
        console.print(f"ledger and exchange agree: {resolved} on {exchange}")
        return
    console.print(_differences_table(differences, f"{resolved} against {exchange}"))
    if record:
        console.print(f"{len(differences)} logged as warning events (type reconciliation)")
    raise typer.Exit(DIFFERENCES_EXIT)


def _differences_table(differences: list[PositionDifference], where: str) -> Table:
    table = folding_table(
        "symbol", "side", "exchange size", "ledger size", "exchange entry", "ledger entry",
        "problem", title=f"{len(differences)} differences, {where}",
    )  # fmt: skip
    for found in differences:
        table.add_row(
            found.symbol,
            found.side,
            money(found.exchange_size),
            money(found.ledger_size),
            money(found.exchange_entry_price),
            money(found.ledger_entry_price),
            found.problem,
        )
    return table


def read_positions(file: Path) -> list[ExchangePosition]:
    """The positions of a JSON file, checked whole: the first bad item is refused with its index
    and field. A side given twice is refused too (which of the two would be the exchange's?).

    Raises:
        ValidationError: unreadable file, not JSON, or a bad item.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationError(f"{file}: cannot read it: {reason}") from None
    try:
        items = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{file}: not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(items, list):
        raise ValidationError(f"{file}: expected a JSON list of positions, got {_kind(items)}")
    positions: list[ExchangePosition] = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        try:
            position = _position(item)
        except ValidationError as exc:
            raise ValidationError(f"{file}: item {index}: {exc}", field=exc.field) from None
        key = (position.symbol, position.side)
        if key in seen:
            raise ValidationError(
                f"{file}: item {index}: {position.symbol} {position.side} is already item "
                f"{seen[key]}"
            )
        seen[key] = index
        positions.append(position)
    return positions


def _position(item: Any) -> ExchangePosition:
    if not isinstance(item, dict):
        raise ValidationError(f"expected an object, got {_kind(item)}")
    unknown = sorted(set(item) - set(_POSITION_FIELDS))
    if unknown:
        raise ValidationError(
            f"{unknown[0]}: unknown field (expected {', '.join(_POSITION_FIELDS)})",
            field=unknown[0],
        )
    for name in ("symbol", "side", "size"):
        if item.get(name) is None:
            raise ValidationError(f"{name}: missing", field=name)
    for name in ("symbol", "side"):
        if not isinstance(item[name], str) or not item[name].strip():
            raise ValidationError(f"{name}: expected a non-empty string", field=name)
    entry = item.get("entry_price")
    return ExchangePosition(
        symbol=item["symbol"],
        side=item["side"],
        size=_number("size", item["size"]),
        entry_price=None if entry is None else _number("entry_price", entry),
    )


def _number(name: str, value: Any) -> Decimal:
    number = to_decimal(name, value)
    if not number.is_finite():
        raise ValidationError(f"{name}: {value} is not a finite number", field=name)
    return number


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict | list | str):
        return {dict: "an object", list: "a list", str: "a string"}[type(value)]
    return "a number or boolean"
