"""The ORM schema (SCHEMA.md) as SQLAlchemy 2 typed models.

Money columns are ``ExactNumeric(20, 8)``, times ``UTCDateTime`` and documents ``JSONDocument``
(see ``types``), so the same models keep the data rules on SQLite and PostgreSQL. Constraint and
index names come from one naming convention, which keeps migrations deterministic. Views and the
``updated_at`` triggers live in the migrations, since they are not tables.

Every index below is justified by a query; the latest-N read per series is served by scanning the
unique candle key backwards, so it has no index of its own.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    FetchedValue,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iftb.data.storage.enums import (
    LLMCallStatus,
    LockSide,
    Mode,
    PositionStatus,
    PriceType,
    RunStatus,
    Severity,
    Side,
    StateType,
    TradeAction,
)
from iftb.data.storage.scopes import BOT_NAME_LENGTH, DEFAULT_BOT
from iftb.data.storage.sql_functions import utcnow
from iftb.data.storage.types import ExactNumeric, JSONDocument, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = ExactNumeric(20, 8)
Score = ExactNumeric(5, 4)
Leverage = ExactNumeric(5, 2)
# Percentages and ratios the layer computes (PnL %, drawdown, Sharpe, profit factor): wide
# enough for a 125x trade after a large move (migration 0003).
Percent = ExactNumeric(20, 4)
Cost = ExactNumeric(10, 6)
Rate = ExactNumeric(20, 12)
"""A funding rate: real rates reach 1e-8 and beyond."""

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


def one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK expression limiting ``column`` to an enum's values."""
    listed = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({listed})"


def gin_index(name: str, column: str) -> Index:
    """A GIN index on a JSONB column; PostgreSQL only (SQLite cannot index into JSON this way)."""
    return Index(name, column, postgresql_using="gin").ddl_if(dialect="postgresql")


def scope_rules() -> tuple[CheckConstraint, CheckConstraint]:
    """A journal row's scope is well formed: a known mode, and a run exactly on backtest rows."""
    return (
        CheckConstraint(one_of("mode", Mode), name="mode"),
        CheckConstraint("(mode = 'backtest') = (run_id IS NOT NULL)", name="run_scope"),
    )


def unique_in_scope(table: str, name: str, *columns: str, where: str = "") -> tuple[Index, Index]:
    """``columns`` unique within each scope: by (bot, mode) among live and paper rows, by run
    among a backtest's. Two partial indexes, since ``run_id`` is NULL outside backtests and
    NULLs never collide in a unique index (on either backend). The second also serves the
    cascade that deletes a run's rows."""
    extra = f" AND {where}" if where else ""
    return (
        _partial(f"uq_{table}_scope_{name}", ("bot", "mode", *columns), f"run_id IS NULL{extra}"),
        _partial(f"uq_{table}_run_{name}", ("run_id", *columns), f"run_id IS NOT NULL{extra}"),
    )


def index_in_scope(
    table: str, name: str, *columns: str, counting: bool = False
) -> tuple[Index, Index]:
    """Finds rows by ``columns`` within a scope: live and paper rows by (bot, mode, ...), a
    backtest's by (run_id, ...), as ``unique_in_scope`` keys them, but not unique. ``counting``,
    the run's index holds bot and mode too, so counting a scope's rows reads the index alone."""
    run = ("run_id", "bot", "mode") if counting else ("run_id",)
    return (
        _partial(
            f"ix_{table}_scope_{name}", ("bot", "mode", *columns), "run_id IS NULL", unique=False
        ),
        _partial(f"ix_{table}_run_{name}", (*run, *columns), "run_id IS NOT NULL", unique=False),
    )


def run_index(table: str) -> Index:
    """Finds a backtest run's rows, for the cascade that deletes them with the run."""
    return _partial(f"ix_{table}_run_id", ("run_id",), "run_id IS NOT NULL", unique=False)


def _partial(name: str, columns: tuple[str, ...], where: str, *, unique: bool = True) -> Index:
    return Index(
        name, *columns, unique=unique, postgresql_where=text(where), sqlite_where=text(where)
    )


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdentityRow:
    """Columns every table has: an identity key and the insertion time."""

    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True, sort_order=-1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())


class ScopeColumns:
    """The scope of a journal row (``scopes.Scope``); deleting a backtest run deletes its rows."""

    bot: Mapped[str] = mapped_column(
        String(BOT_NAME_LENGTH), server_default=text(f"'{DEFAULT_BOT}'"), sort_order=10
    )
    mode: Mapped[str] = mapped_column(
        String(10), server_default=text(f"'{Mode.LIVE.value}'"), sort_order=10
    )
    run_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("backtest_runs.id", ondelete="CASCADE"), sort_order=10
    )


class OHLCVModel(IdentityRow, Base):
    """Candles. On PostgreSQL the table is partitioned by ``timestamp`` (migration 0002), so its
    keys hold ``timestamp``; they hold ``symbol`` too, the column Citus would distribute by."""

    __tablename__ = "ohlcv"
    __table_args__ = (
        PrimaryKeyConstraint("id", "symbol", "timestamp"),
        UniqueConstraint(
            "symbol",
            "exchange",
            "timeframe",
            "price_type",
            "timestamp",
            name="ohlcv_unique_candle",
        ),
        CheckConstraint(one_of("price_type", PriceType), name="price_type"),
        Index("ix_ohlcv_timestamp", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, Identity(), sort_order=-1)

    symbol: Mapped[str] = mapped_column(String(20))
    exchange: Mapped[str] = mapped_column(String(50))
    timeframe: Mapped[str] = mapped_column(String(10))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    open: Mapped[Decimal] = mapped_column(Money)
    high: Mapped[Decimal] = mapped_column(Money)
    low: Mapped[Decimal] = mapped_column(Money)
    close: Mapped[Decimal] = mapped_column(Money)
    volume: Mapped[Decimal] = mapped_column(Money)
    quote_volume: Mapped[Decimal | None] = mapped_column(Money)
    trades_count: Mapped[int | None] = mapped_column(Integer)
    price_type: Mapped[str] = mapped_column(String(16), server_default=text("'trade'"))


class TradeModel(ScopeColumns, IdentityRow, Base):
    __tablename__ = "trades"
    __table_args__ = (
        CheckConstraint(one_of("side", Side), name="side"),
        CheckConstraint(one_of("action", TradeAction), name="action"),
        *scope_rules(),
        *unique_in_scope("trades", "trade_id", "trade_id"),
        # a scope's trades by entry time, all or one symbol's: newest-first pages, their counts
        *index_in_scope("trades", "entry_time", "entry_time", "id", counting=True),
        *index_in_scope("trades", "symbol_entry_time", "symbol", "entry_time", "id", counting=True),
        # a scope's trades by exit time: statistics (in exit order), rollups, recent closes
        *index_in_scope("trades", "exit_time", "exit_time", "id", counting=True),
        Index("ix_trades_action", "action"),
        gin_index("ix_trades_decision_reasons", "decision_reasons"),
    )

    trade_id: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(20))
    exchange: Mapped[str] = mapped_column(String(50))
    side: Mapped[str] = mapped_column(String(10))
    action: Mapped[str] = mapped_column(String(10))
    entry_price: Mapped[Decimal] = mapped_column(Money)
    exit_price: Mapped[Decimal | None] = mapped_column(Money)
    quantity: Mapped[Decimal] = mapped_column(Money)
    leverage: Mapped[Decimal | None] = mapped_column(Leverage, server_default=text("1"))
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    realized_pnl_pct: Mapped[Decimal | None] = mapped_column(Percent)
    fee: Mapped[Decimal | None] = mapped_column(Money, server_default=text("0"))
    funding: Mapped[Decimal | None] = mapped_column(Money, server_default=text("0"))
    signal_score: Mapped[Decimal | None] = mapped_column(Score)
    technical_score: Mapped[Decimal | None] = mapped_column(Score)
    llm_score: Mapped[Decimal | None] = mapped_column(Score)
    xgb_confidence: Mapped[Decimal | None] = mapped_column(Score)
    stop_loss: Mapped[Decimal | None] = mapped_column(Money)
    take_profit: Mapped[Decimal | None] = mapped_column(Money)
    position_size_pct: Mapped[Decimal | None] = mapped_column(Leverage)
    decision_reasons: Mapped[Any | None] = mapped_column(JSONDocument)
    llm_analysis: Mapped[Any | None] = mapped_column(JSONDocument)
    entry_time: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())
    exit_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, server_default=utcnow(), server_onupdate=FetchedValue()
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class PositionModel(ScopeColumns, IdentityRow, Base):
    __tablename__ = "positions"
    __table_args__ = (
        CheckConstraint(one_of("side", Side), name="side"),
        CheckConstraint(one_of("status", PositionStatus), name="status"),
        *scope_rules(),
        # One open position per (scope, symbol, exchange, side): partial unique indexes, so two
        # racing writers cannot both open one. They also serve the open-positions lookups.
        *unique_in_scope(
            "positions",
            "open_symbol_exchange_side",
            "symbol",
            "exchange",
            "side",
            where="status = 'open'",
        ),
        # Every position of one side of a symbol, open or not: the ledger's position of a trade.
        *index_in_scope("positions", "symbol_exchange_side", "symbol", "exchange", "side"),
    )

    symbol: Mapped[str] = mapped_column(String(20))
    exchange: Mapped[str] = mapped_column(String(50))
    side: Mapped[str] = mapped_column(String(10))
    entry_price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[Decimal] = mapped_column(Money)
    leverage: Mapped[Decimal | None] = mapped_column(Leverage, server_default=text("1"))
    margin: Mapped[Decimal] = mapped_column(Money)
    current_price: Mapped[Decimal | None] = mapped_column(Money)
    unrealized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    unrealized_pnl_pct: Mapped[Decimal | None] = mapped_column(Percent)
    liquidation_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_loss: Mapped[Decimal | None] = mapped_column(Money)
    take_profit: Mapped[Decimal | None] = mapped_column(Money)
    trailing_stop: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'open'"))
    trade_id: Mapped[str | None] = mapped_column(String(100))
    entry_time: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())
    last_updated: Mapped[datetime | None] = mapped_column(
        UTCDateTime, server_default=utcnow(), server_onupdate=FetchedValue()
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class LLMAnalysisLogModel(ScopeColumns, IdentityRow, Base):
    __tablename__ = "llm_analysis_log"
    __table_args__ = (
        CheckConstraint(one_of("status", LLMCallStatus), name="status"),
        *scope_rules(),
        run_index("llm_analysis_log"),
        Index("ix_llm_analysis_log_type_created_at", "analysis_type", "created_at"),
        Index("ix_llm_analysis_log_created_at", "created_at"),
        Index("ix_llm_analysis_log_status", "status"),
        gin_index("ix_llm_analysis_log_response_json", "response_json"),
    )

    analysis_type: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str | None] = mapped_column(String(20))
    exchange: Mapped[str | None] = mapped_column(String(50))
    prompt_template: Mapped[str | None] = mapped_column(String(100))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    prompt_text: Mapped[str | None] = mapped_column(Text)
    response_text: Mapped[str | None] = mapped_column(Text)
    response_tokens: Mapped[int | None] = mapped_column(Integer)
    response_json: Mapped[Any | None] = mapped_column(JSONDocument)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    estimated_cost: Mapped[Decimal | None] = mapped_column(Cost)
    model_name: Mapped[str | None] = mapped_column(String(100))
    temperature: Mapped[Decimal | None] = mapped_column(ExactNumeric(3, 2))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'success'"))
    error_message: Mapped[str | None] = mapped_column(Text)
    execution_time_ms: Mapped[int | None] = mapped_column(Integer)


class SystemEventModel(ScopeColumns, IdentityRow, Base):
    __tablename__ = "system_events"
    __table_args__ = (
        CheckConstraint(one_of("severity", Severity), name="severity"),
        *scope_rules(),
        run_index("system_events"),
        Index("ix_system_events_type_created_at", "event_type", "created_at"),
        Index("ix_system_events_created_at", "created_at"),
        Index("ix_system_events_severity_created_at", "severity", "created_at"),
        gin_index("ix_system_events_details", "details"),
    )

    event_type: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[Any | None] = mapped_column(JSONDocument)
    symbol: Mapped[str | None] = mapped_column(String(20))
    exchange: Mapped[str | None] = mapped_column(String(50))
    trade_id: Mapped[str | None] = mapped_column(String(100))
    position_id: Mapped[int | None] = mapped_column(BigInteger)
    stack_trace: Mapped[str | None] = mapped_column(Text)


class DailyPerformanceModel(ScopeColumns, IdentityRow, Base):
    __tablename__ = "daily_performance"
    __table_args__ = (
        *scope_rules(),
        *unique_in_scope("daily_performance", "date_exchange", "date", "exchange"),
    )

    date: Mapped[date] = mapped_column(Date)
    exchange: Mapped[str] = mapped_column(String(50))
    total_trades: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    winning_trades: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    losing_trades: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    win_rate: Mapped[Decimal | None] = mapped_column(Leverage)
    gross_profit: Mapped[Decimal | None] = mapped_column(Money, server_default=text("0"))
    gross_loss: Mapped[Decimal | None] = mapped_column(Money, server_default=text("0"))
    net_pnl: Mapped[Decimal | None] = mapped_column(Money, server_default=text("0"))
    net_pnl_pct: Mapped[Decimal | None] = mapped_column(Percent)
    total_fees: Mapped[Decimal | None] = mapped_column(Money, server_default=text("0"))
    total_funding: Mapped[Decimal | None] = mapped_column(Money, server_default=text("0"))
    avg_position_size: Mapped[Decimal | None] = mapped_column(Money)
    max_position_size: Mapped[Decimal | None] = mapped_column(Money)
    total_volume: Mapped[Decimal | None] = mapped_column(Money)
    max_drawdown: Mapped[Decimal | None] = mapped_column(Percent)
    max_drawdown_amount: Mapped[Decimal | None] = mapped_column(Money)
    sharpe_ratio: Mapped[Decimal | None] = mapped_column(Percent)
    profit_factor: Mapped[Decimal | None] = mapped_column(Percent)
    starting_balance: Mapped[Decimal | None] = mapped_column(Money)
    ending_balance: Mapped[Decimal | None] = mapped_column(Money)
    peak_balance: Mapped[Decimal | None] = mapped_column(Money)
    avg_trade_duration_minutes: Mapped[int | None] = mapped_column(Integer)
    longest_winning_streak: Mapped[int | None] = mapped_column(Integer)
    longest_losing_streak: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, server_default=utcnow(), server_onupdate=FetchedValue()
    )


class BacktestRunModel(IdentityRow, Base):
    """One backtest: what ran on which data, and how it did. Its journal rows (mode
    ``backtest``) reference it and are deleted with it."""

    __tablename__ = "backtest_runs"
    __table_args__ = (
        CheckConstraint(one_of("status", RunStatus), name="status"),
        CheckConstraint("data_end >= data_start", name="data_window"),
        Index("ix_backtest_runs_bot_strategy_started_at", "bot", "strategy", "started_at"),
    )

    bot: Mapped[str] = mapped_column(String(BOT_NAME_LENGTH))
    strategy: Mapped[str] = mapped_column(String(100))
    strategy_version: Mapped[str | None] = mapped_column(String(50))
    timeframe: Mapped[str] = mapped_column(String(10))
    data_start: Mapped[datetime] = mapped_column(UTCDateTime)
    data_end: Mapped[datetime] = mapped_column(UTCDateTime)
    config: Mapped[Any | None] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'running'"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[Any | None] = mapped_column(JSONDocument)
    error_message: Mapped[str | None] = mapped_column(Text)


class BotStateModel(ScopeColumns, IdentityRow, Base):
    """A bot's key-value state, one value per key and scope, stored as text with its type."""

    __tablename__ = "bot_state"
    __table_args__ = (
        CheckConstraint(one_of("value_type", StateType), name="value_type"),
        *scope_rules(),
        *unique_in_scope("bot_state", "key", "key"),
    )

    key: Mapped[str] = mapped_column(String(100))
    value_type: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, server_default=utcnow(), server_onupdate=FetchedValue()
    )


class PairLockModel(ScopeColumns, IdentityRow, Base):
    """A pair a bot must not trade (on one side or both) until ``lock_end_time``."""

    __tablename__ = "pair_locks"
    __table_args__ = (
        CheckConstraint(one_of("side", LockSide), name="side"),
        CheckConstraint("lock_end_time > lock_time", name="lock_window"),
        *scope_rules(),
        run_index("pair_locks"),
        # the active locks of a scope, by when they end
        _partial(
            "ix_pair_locks_scope_active", ("bot", "mode", "lock_end_time"), "active", unique=False
        ),
    )

    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(10), server_default=text("'*'"))
    lock_time: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())
    lock_end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
