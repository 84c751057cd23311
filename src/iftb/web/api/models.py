"""The API's response models: money as decimal strings (every digit kept), times as ISO-8601
UTC with ``Z``, and only the fields an operator reads (no prompt texts, no stack traces)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Built from the repositories' records by attribute."""

    model_config = ConfigDict(from_attributes=True)


class ScopeOut(Model):
    bot: str
    mode: str
    run_id: int | None


class ScopeSummaryOut(Model):
    scope: ScopeOut
    name: str
    trades: int
    open_positions: int
    last_exit: datetime | None


class StatisticsOut(Model):
    scope: ScopeOut
    start: datetime | None
    end: datetime | None
    exchange: str | None
    total_trades: int
    winning_trades: int
    losing_trades: int
    breakeven_trades: int
    win_rate: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    net_pnl: Decimal
    total_fees: Decimal
    total_funding: Decimal
    pnl_before_costs: Decimal
    avg_win: Decimal
    avg_loss: Decimal
    largest_win: Decimal
    largest_loss: Decimal
    profit_factor: Decimal | None
    expectancy: Decimal
    max_drawdown_amount: Decimal
    max_drawdown_pct: Decimal
    avg_holding_time: timedelta
    longest_winning_streak: int
    longest_losing_streak: int


class DailyOut(Model):
    date: date
    exchange: str
    total_trades: int
    winning_trades: int
    losing_trades: int
    win_rate: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal
    net_pnl: Decimal
    net_pnl_pct: Decimal | None
    total_fees: Decimal
    total_funding: Decimal
    total_volume: Decimal | None
    max_drawdown: Decimal | None
    max_drawdown_amount: Decimal | None
    sharpe_ratio: Decimal | None
    profit_factor: Decimal | None
    starting_balance: Decimal | None
    ending_balance: Decimal | None
    peak_balance: Decimal | None


class EquityPointOut(Model):
    date: date
    balance: Decimal
    peak: Decimal
    drawdown: Decimal
    """How far the balance is below its peak so far (0 at a new peak)."""
    drawdown_pct: Decimal | None


class PositionOut(Model):
    id: int | None
    symbol: str
    exchange: str
    side: str
    entry_price: Decimal
    quantity: Decimal
    margin: Decimal
    leverage: Decimal
    current_price: Decimal | None
    unrealized_pnl: Decimal | None
    unrealized_pnl_pct: Decimal | None
    liquidation_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    status: str
    trade_id: str | None
    entry_time: datetime
    last_updated: datetime | None


class TradeOut(Model):
    id: int | None
    trade_id: str
    symbol: str
    exchange: str
    side: str
    action: str
    entry_price: Decimal
    exit_price: Decimal | None
    quantity: Decimal
    leverage: Decimal
    fee: Decimal
    funding: Decimal
    realized_pnl: Decimal | None
    realized_pnl_pct: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    entry_time: datetime
    exit_time: datetime | None


class TradePageOut(Model):
    trades: list[TradeOut]
    total: int
    limit: int
    offset: int


class MarkerOut(Model):
    time: datetime
    trade_id: str
    kind: str
    """``entry`` or ``exit``."""
    side: str
    price: Decimal
    realized_pnl: Decimal | None


class OrderOut(Model):
    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    exchange: str
    side: str
    position_side: str
    order_type: str
    status: str
    quantity: Decimal
    price: Decimal | None
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    reduce_only: bool
    placed_at: datetime


class FillOut(Model):
    exchange_fill_id: str
    client_order_id: str
    symbol: str
    exchange: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str | None
    is_maker: bool | None
    filled_at: datetime


class FundingOut(Model):
    symbol: str
    exchange: str
    position_side: str
    funding_time: datetime
    amount: Decimal
    rate: Decimal | None


class LedgerOut(Model):
    trade: TradeOut
    orders: list[OrderOut]
    fills: list[FillOut]
    funding: list[FundingOut]


class LLMUsageOut(Model):
    model: str | None
    calls: int
    successes: int
    errors: int
    timeouts: int
    prompt_tokens: int
    response_tokens: int
    total_tokens: int
    estimated_cost: Decimal
    avg_latency_ms: Decimal | None
    p95_latency_ms: int | None


class LLMDayOut(Model):
    day: date
    model: str | None
    calls: int
    total_tokens: int
    estimated_cost: Decimal


class LLMSpendOut(Model):
    days: int
    by_model: list[LLMUsageOut]
    by_day: list[LLMDayOut]


class EventOut(Model):
    id: int | None
    created_at: datetime | None
    severity: str
    event_type: str
    message: str
    symbol: str | None
    exchange: str | None
    trade_id: str | None
    details: Any


class SeriesOut(Model):
    symbol: str
    exchange: str
    timeframe: str
    price_type: str
    first: datetime
    last: datetime
    count: int
    expected: int
    missing: int
    gaps: int
    """Runs of missing candles."""


class CandleOut(Model):
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class CandlePageOut(Model):
    symbol: str
    exchange: str
    timeframe: str
    price_type: str
    candles: list[CandleOut]
    next_start: datetime | None
    """Where the next page starts (None: this page reaches ``end``)."""
