"""DailyPerformanceRepository: one row per (scope, date, exchange), the rollup job, the equity
curve.

``rollup`` derives a day's row from the trades closed that day with the same SQL as
``TradeRepository.get_statistics`` and stores it with one native upsert, so running it twice
changes nothing and running it after a late trade corrects the day.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select

from iftb.data.storage.errors import ValidationError
from iftb.data.storage.models import DailyPerformanceModel, Percent, TradeModel
from iftb.data.storage.records import DailyPerformance
from iftb.data.storage.repositories.base import all_records, one_or_none, touched
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.repositories.journal.trade_statistics import (
    notional_totals,
    rounded_whole,
    statistics_and_peak,
)
from iftb.data.storage.validation import date_rule
from iftb.utils import get_logger

SHARPE_WINDOW_DAYS = 30
TRADING_DAYS_PER_YEAR = 365  # crypto trades every day of the year
_KEY = ("date", "exchange")
_COLUMNS = DailyPerformanceModel.__table__.columns
_RATIO = Decimal("1e-4")
_CENT = Decimal("0.01")
log = get_logger(__name__)


class DailyPerformanceRepository(ScopedRepository):
    """A scope's daily trading results per exchange."""

    async def upsert(self, record: DailyPerformance) -> DailyPerformance:
        """Store the day's row, replacing the one stored for (date, exchange) in this scope."""
        record.validate()
        values = self._row_values(record, DailyPerformanceModel) | touched(DailyPerformanceModel)
        statement = self._scoped_upsert(DailyPerformanceModel, values, _KEY)
        stored = one_or_none(DailyPerformance, await self._write(statement))
        assert stored is not None
        return stored

    async def get(self, day: date, exchange: str = "binance") -> DailyPerformance | None:
        statement = select(*_COLUMNS).where(
            self._in_scope(DailyPerformanceModel),
            DailyPerformanceModel.date == date_rule("date")(day),
            DailyPerformanceModel.exchange == exchange,
        )
        return one_or_none(DailyPerformance, await self._execute(statement))

    async def get_range(
        self, start: date, end: date, exchange: str = "binance"
    ) -> list[DailyPerformance]:
        """The days in ``[start, end]``, oldest first."""
        statement = (
            select(*_COLUMNS)
            .where(
                self._in_scope(DailyPerformanceModel),
                DailyPerformanceModel.date.between(
                    date_rule("start")(start), date_rule("end")(end)
                ),
                DailyPerformanceModel.exchange == exchange,
            )
            .order_by(DailyPerformanceModel.date)
        )
        return all_records(DailyPerformance, await self._execute(statement))

    async def get_equity_curve(
        self, start: date, end: date, exchange: str = "binance"
    ) -> list[tuple[date, Decimal]]:
        """Each day's ending balance in ``[start, end]`` (days without a balance are left out)."""
        return [
            (day.date, day.ending_balance)
            for day in await self.get_range(start, end, exchange)
            if day.ending_balance is not None
        ]

    async def rollup(
        self, day: date, exchange: str = "binance", starting_balance: Decimal | None = None
    ) -> DailyPerformance:
        """Compute and store ``day``'s row from the trades closed that day (UTC).

        Days after ``day`` that are already stored are rolled again, in order, so their
        balances and Sharpe ratios follow the change: each keeps the difference between its
        starting balance and the ending balance of the day before it (a deposit or a
        withdrawal), and a day whose previous day is not stored keeps its starting balance.

        Args:
            starting_balance: The balance at 00:00 UTC; defaults to the previous day's ending
                balance, or when there is none, to the day's own stored starting balance (a
                re-roll). Needed for the percentages and the balances.
        """
        day = date_rule("date")(day)
        before = {row.date: row for row in await self._from(day - timedelta(days=1), exchange)}
        previous, stored = before.get(day - timedelta(days=1)), before.get(day)
        if starting_balance is None and previous is not None:
            starting_balance = previous.ending_balance
        if starting_balance is None and stored is not None:
            starting_balance = stored.starting_balance
        if starting_balance is None:
            raise ValidationError(
                f"starting_balance: needed for {day} (no ending balance stored for the day before)",
                field="starting_balance",
            )
        rolled = await self._roll(day, exchange, starting_balance)
        await self._roll_forward(rolled, before)
        return rolled

    async def _roll_forward(
        self, rolled: DailyPerformance, before: dict[date, DailyPerformance]
    ) -> None:
        """Roll again the days stored after ``rolled``, given how they stood ``before``."""
        latest = rolled
        for later in sorted(stored_day for stored_day in before if stored_day > rolled.date):
            old, old_previous = before[later], before.get(later - timedelta(days=1))
            start = old.starting_balance
            if old_previous is not None and latest.date == old_previous.date:
                # moved by as much as the day before's ending balance moved, so a deposit or a
                # withdrawal between the two days is kept
                start = _moved(start, old_previous.ending_balance, latest.ending_balance)
            if start is not None:
                latest = await self._roll(later, rolled.exchange, start)

    async def _from(self, day: date, exchange: str) -> list[DailyPerformance]:
        """The stored days from ``day`` on, oldest first."""
        statement = (
            select(*_COLUMNS)
            .where(
                self._in_scope(DailyPerformanceModel),
                DailyPerformanceModel.date >= day,
                DailyPerformanceModel.exchange == exchange,
            )
            .order_by(DailyPerformanceModel.date)
        )
        return all_records(DailyPerformance, await self._execute(statement))

    async def _roll(self, day: date, exchange: str, starting_balance: Decimal) -> DailyPerformance:
        """Compute and upsert one day's row from a known starting balance."""
        opens = datetime.combine(day, time(), tzinfo=UTC)
        trades = (
            self._in_scope(TradeModel)
            & (TradeModel.exchange == exchange)
            & (TradeModel.exit_time >= opens)
            & (TradeModel.exit_time < opens + timedelta(days=1))
        )
        stats, peak = await statistics_and_peak(self._session, trades, starting_balance)
        sizes = await notional_totals(self._session, trades)
        ending = starting_balance + stats.net_pnl
        row = DailyPerformance(
            date=day,
            exchange=exchange,
            total_trades=stats.total_trades,
            winning_trades=stats.winning_trades,
            losing_trades=stats.losing_trades,
            # from the counts, rounded once (not the statistics' 4-place figure rounded again)
            win_rate=_percent_of(Decimal(stats.winning_trades), stats.total_trades, _CENT)
            or Decimal(0),
            gross_profit=stats.gross_profit,
            gross_loss=stats.gross_loss,
            net_pnl=stats.net_pnl,
            net_pnl_pct=_storable("net_pnl_pct", _percent_of(stats.net_pnl, starting_balance)),
            total_fees=stats.total_fees,
            total_funding=stats.total_funding,
            avg_position_size=sizes.average_notional,
            max_position_size=sizes.largest_notional,
            total_volume=sizes.traded_volume,
            max_drawdown=_storable("max_drawdown", stats.max_drawdown_pct),
            max_drawdown_amount=stats.max_drawdown_amount,
            profit_factor=_storable("profit_factor", stats.profit_factor),
            starting_balance=starting_balance,
            ending_balance=ending,
            peak_balance=peak,
            avg_trade_duration_minutes=_whole_minutes(stats.avg_holding_time),
            longest_winning_streak=stats.longest_winning_streak,
            longest_losing_streak=stats.longest_losing_streak,
        )
        sharpe = await self._sharpe(day, exchange, _return(row))
        row.sharpe_ratio = _storable("sharpe_ratio", sharpe)
        return await self.upsert(row)

    async def _sharpe(self, day: date, exchange: str, today: Decimal | None) -> Decimal | None:
        """Annualised Sharpe ratio of the daily returns over the trailing window, risk-free 0:
        mean / sample standard deviation × √365. None with fewer than two days or no spread."""
        earlier = await self.get_range(
            day - timedelta(days=SHARPE_WINDOW_DAYS - 1), day - timedelta(days=1), exchange
        )
        returns = [r for r in (_return(d) for d in earlier) if r is not None]
        if today is not None:
            returns.append(today)
        if len(returns) < 2:
            return None
        spread = statistics.stdev(float(r) for r in returns)
        if spread == 0:
            return None
        ratio = (
            statistics.fmean(float(r) for r in returns) / spread * math.sqrt(TRADING_DAYS_PER_YEAR)
        )
        return Decimal(str(round(ratio, 4)))


def _return(day: DailyPerformance) -> Decimal | None:
    if not day.starting_balance:
        return None
    return day.net_pnl / day.starting_balance


def _percent_of(amount: Decimal, base: Decimal | int, quantum: Decimal = _RATIO) -> Decimal | None:
    if not base:
        return None
    return (amount / base * 100).quantize(quantum, rounding=ROUND_HALF_UP)


def _moved(value: Decimal | None, old: Decimal | None, new: Decimal | None) -> Decimal | None:
    if value is None or old is None or new is None:
        return value
    return value + (new - old)


def _storable(name: str, value: Decimal | None) -> Decimal | None:
    """A computed ratio as stored: None (unknown) when its column cannot hold it, so one
    extreme day never stops the rollup, nor the days after it."""
    if value is None or Percent.holds(value):
        return value
    log.warning("computed value beyond its column: stored as NULL", field=name, value=str(value))
    return None


def _whole_minutes(duration: timedelta) -> int:
    return int(rounded_whole(Decimal(duration // timedelta(microseconds=1)) / 60_000_000))
