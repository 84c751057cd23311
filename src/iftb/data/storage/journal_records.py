"""Records of the scoped journal: backtest runs, pair locks, and a scope's place in the whole.

Built by the repositories from stored rows (``from_row``); their inputs are checked by the
repository methods that write them, which name the field and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Self

from iftb.data.storage.enums import Mode
from iftb.data.storage.scopes import Scope


class _FromRow:
    __slots__ = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        return cls(**{f.name: row[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TradeStatistics:
    """Performance over a window of closed trades. Definitions: docs/storage_layer.md."""

    total_trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    breakeven_trades: int = 0
    win_rate: Decimal = Decimal(0)
    gross_profit: Decimal = Decimal(0)
    gross_loss: Decimal = Decimal(0)
    net_pnl: Decimal = Decimal(0)
    """After costs: fees paid and funding paid or received."""
    total_fees: Decimal = Decimal(0)
    total_funding: Decimal = Decimal(0)
    """Received (positive) or paid (negative)."""
    pnl_before_costs: Decimal = Decimal(0)
    """``net_pnl + total_fees - total_funding``: what the price moves alone made."""
    avg_win: Decimal = Decimal(0)
    avg_loss: Decimal = Decimal(0)
    largest_win: Decimal = Decimal(0)
    largest_loss: Decimal = Decimal(0)
    profit_factor: Decimal | None = None
    expectancy: Decimal = Decimal(0)
    max_drawdown_amount: Decimal = Decimal(0)
    max_drawdown_pct: Decimal = Decimal(0)
    avg_holding_time: timedelta = timedelta(0)
    longest_winning_streak: int = 0
    longest_losing_streak: int = 0


@dataclass(frozen=True, slots=True)
class BacktestRun(_FromRow):
    """One backtest: the strategy, its configuration, the data window, and how it did."""

    id: int
    bot: str
    strategy: str
    strategy_version: str | None
    timeframe: str
    data_start: datetime
    data_end: datetime
    config: Any
    status: str
    started_at: datetime
    finished_at: datetime | None
    summary: Any
    """The run's trade statistics as JSON (numbers as exact strings), set by ``finish``."""
    error_message: str | None
    trade_count: int
    created_at: datetime

    @property
    def scope(self) -> Scope:
        """The scope its trades, positions and events are written to."""
        return Scope(self.bot, Mode.BACKTEST, self.id)


@dataclass(frozen=True, slots=True)
class PairLock(_FromRow):
    """A pair the scope must not trade on ``side`` (``*``: both) until ``lock_end_time``."""

    id: int
    symbol: str
    side: str
    lock_time: datetime
    lock_end_time: datetime
    reason: str | None
    active: bool
    bot: str
    mode: str
    run_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ScopeSummary:
    """A scope found in the journal: how many trades it holds and when it last traded."""

    scope: Scope
    trades: int
    open_positions: int
    last_exit: datetime | None


@dataclass(frozen=True, slots=True)
class ScopeStatistics:
    """One scope's statistics over a window: a column of a side-by-side comparison."""

    scope: Scope
    statistics: TradeStatistics
