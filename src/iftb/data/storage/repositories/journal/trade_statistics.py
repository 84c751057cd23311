"""Performance statistics over a set of closed trades, computed in SQL (docs/trading_journal.md).

Shared by ``TradeRepository.get_statistics`` and the daily rollup, so both report the same
numbers by the same definitions. Three set-based queries — totals, the drawdown of the running
PnL, and win/loss streaks — return a handful of values; no trade is loaded into Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage.enums import TradeAction
from iftb.data.storage.errors import translated_errors
from iftb.data.storage.journal_records import TradeStatistics
from iftb.data.storage.ledger_math import MONEY
from iftb.data.storage.models import TradeModel
from iftb.data.storage.sql_functions import (
    dec_add,
    dec_div,
    dec_max,
    dec_min,
    dec_mul,
    dec_sign,
    dec_sub,
    dec_sum,
    epoch_microseconds,
)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
_PERCENT = Decimal("1e-4")

CLOSED = TradeModel.action.in_([TradeAction.CLOSE.value, TradeAction.LIQUIDATED.value])
PNL = func.coalesce(TradeModel.realized_pnl, literal(ZERO, TradeModel.realized_pnl.type))
ORDER = (TradeModel.exit_time, TradeModel.id)


@dataclass(frozen=True, slots=True)
class Totals:
    """The sums a daily rollup needs beyond TradeStatistics."""

    average_notional: Decimal | None
    largest_notional: Decimal | None
    traded_volume: Decimal


async def trade_statistics(
    session: AsyncSession, scope: ColumnElement[bool], starting_balance: Decimal | None = None
) -> TradeStatistics:
    """Statistics of the closed trades matching ``scope``.

    ``starting_balance`` makes the drawdown percentage relative to the equity peak
    (balance + running PnL); without it, relative to the peak of the running PnL itself.
    """
    statistics, _peak = await statistics_and_peak(session, scope, starting_balance)
    return statistics


async def statistics_and_peak(
    session: AsyncSession, scope: ColumnElement[bool], starting_balance: Decimal | None = None
) -> tuple[TradeStatistics, Decimal]:
    """``trade_statistics`` plus the highest equity reached (starting balance included)."""
    closed = (CLOSED, TradeModel.exit_time.is_not(None), scope)
    with translated_errors():
        totals = (await session.execute(_totals_query(closed))).one()
        if not totals.trades:
            return TradeStatistics(), starting_balance or ZERO
        drawdown = (await session.execute(_drawdown_query(closed, starting_balance))).one()
        streaks = {
            row.outcome: row.longest for row in await session.execute(_streaks_query(closed))
        }
    return _assemble(totals, drawdown, streaks), drawdown.peak


def _assemble(totals: Any, drawdown: Any, streaks: dict[int, int]) -> TradeStatistics:
    gross_loss = -(totals.losses or ZERO)
    gross_profit = totals.profits or ZERO
    return TradeStatistics(
        total_trades=totals.trades,
        winning_trades=totals.wins,
        losing_trades=totals.losers,
        breakeven_trades=totals.trades - totals.wins - totals.losers,
        win_rate=_percent(Decimal(totals.wins) / totals.trades),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_pnl=totals.net,
        total_fees=totals.fees or ZERO,
        total_funding=totals.funding or ZERO,
        pnl_before_costs=totals.net + (totals.fees or ZERO) - (totals.funding or ZERO),
        avg_win=_money(gross_profit / totals.wins) if totals.wins else ZERO,
        avg_loss=_money(gross_loss / totals.losers) if totals.losers else ZERO,
        largest_win=max(totals.best, ZERO),
        largest_loss=min(totals.worst, ZERO),
        profit_factor=_ratio(gross_profit / gross_loss) if gross_loss else None,
        expectancy=_money(totals.net / totals.trades),
        max_drawdown_amount=drawdown.amount or ZERO,
        max_drawdown_pct=_percent(drawdown.ratio or ZERO),
        avg_holding_time=timedelta(
            microseconds=int(rounded_whole(Decimal(totals.held_microseconds or 0) / totals.trades))
        ),
        longest_winning_streak=streaks.get(1, 0),
        longest_losing_streak=streaks.get(-1, 0),
    )


async def notional_totals(session: AsyncSession, scope: ColumnElement[bool]) -> Totals:
    """Average and largest position size (entry notional) and traded volume (entry + exit)."""
    entry = dec_mul(TradeModel.entry_price, TradeModel.quantity)
    exit_ = dec_mul(
        func.coalesce(TradeModel.exit_price, TradeModel.entry_price), TradeModel.quantity
    )
    query = select(
        func.count().label("trades"),
        dec_sum(entry).label("entries"),
        dec_max(entry).label("largest"),
        dec_sum(exit_).label("exits"),
    ).where(CLOSED, TradeModel.exit_time.is_not(None), scope)
    with translated_errors():
        row = (await session.execute(query)).one()
    if not row.trades:
        return Totals(None, None, ZERO)
    return Totals(
        average_notional=_money(row.entries / row.trades),
        largest_notional=_money(row.largest),
        traded_volume=_money(row.entries + row.exits),
    )


def _totals_query(closed: tuple[ColumnElement[bool], ...]) -> Any:
    sign = dec_sign(PNL)
    return select(
        func.count().label("trades"),
        func.count(case((sign > 0, 1))).label("wins"),
        func.count(case((sign < 0, 1))).label("losers"),
        dec_sum(case((sign > 0, PNL))).label("profits"),
        dec_sum(case((sign < 0, PNL))).label("losses"),
        dec_sum(PNL).label("net"),
        dec_sum(TradeModel.fee).label("fees"),
        dec_sum(TradeModel.funding).label("funding"),
        dec_max(PNL).label("best"),
        dec_min(PNL).label("worst"),
        # exact integer microseconds summed on both backends (an average would be a float
        # on SQLite); divided and rounded once, in Python
        func.sum(
            epoch_microseconds(TradeModel.exit_time) - epoch_microseconds(TradeModel.entry_time)
        ).label("held_microseconds"),
    ).where(*closed)


def _drawdown_query(
    closed: tuple[ColumnElement[bool], ...], starting_balance: Decimal | None
) -> Any:
    """Largest fall of equity from its running peak: the amount, and the fraction of the peak.

    Equity is the starting balance (0 when not given) plus the running PnL by exit time; the
    starting balance counts as the first peak, so a first losing trade is already a drawdown.
    """
    money = TradeModel.realized_pnl.type
    start = literal(starting_balance or ZERO, money)
    equity = (
        select(
            dec_add(start, dec_sum(PNL).over(order_by=ORDER, rows=(None, 0))).label("equity"),
            func.row_number().over(order_by=ORDER).label("n"),
        )
        .where(*closed)
        .subquery("equity")
    )
    running_peak = dec_max(equity.c.equity).over(order_by=equity.c.n, rows=(None, 0))
    levels = select(equity.c.equity, running_peak.label("peak")).subquery("levels")
    peak = case((dec_sign(dec_sub(levels.c.peak, start)) > 0, levels.c.peak), else_=start)
    fall = dec_sub(peak, levels.c.equity)
    return select(
        dec_max(fall).label("amount"),
        dec_max(case((dec_sign(peak) > 0, dec_div(fall, peak)))).label("ratio"),
        dec_max(peak).label("peak"),
    )


def _streaks_query(closed: tuple[ColumnElement[bool], ...]) -> Any:
    """Longest run of consecutive wins (outcome 1) and losses (-1), by exit time.

    Gaps-and-islands: within one outcome, the difference between a trade's position overall and
    its position among trades of that outcome is constant along a run.
    """
    outcome = dec_sign(PNL)
    numbered = (
        select(
            outcome.label("outcome"),
            (
                func.row_number().over(order_by=ORDER)
                - func.row_number().over(partition_by=outcome, order_by=ORDER)
            ).label("run"),
        )
        .where(*closed)
        .subquery("numbered")
    )
    runs = (
        select(numbered.c.outcome, func.count().label("length"))
        .group_by(numbered.c.outcome, numbered.c.run)
        .subquery("runs")
    )
    return select(runs.c.outcome, func.max(runs.c.length).label("longest")).group_by(runs.c.outcome)


def rounded_whole(value: Decimal) -> Decimal:
    """``value`` rounded half up to a whole number: the one rounding rule of the journal."""
    return value.quantize(Decimal(1), rounding=ROUND_HALF_UP)


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_UP)


def _ratio(value: Decimal) -> Decimal:
    return value.quantize(_PERCENT, rounding=ROUND_HALF_UP)


def _percent(fraction: Decimal) -> Decimal:
    return _ratio(fraction * HUNDRED)
