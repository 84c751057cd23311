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
    CheckConstraint,
    Date,
    FetchedValue,
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

from iftb.data.storage.enums import LLMCallStatus, PositionStatus, Severity, Side, TradeAction
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

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


def one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK expression limiting ``column`` to an enum's values."""
    listed = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({listed})"


def gin_index(name: str, column: str) -> Index:
    """A GIN index on a JSONB column; PostgreSQL only (SQLite cannot index into JSON this way)."""
    return Index(name, column, postgresql_using="gin").ddl_if(dialect="postgresql")


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _Row:
    """Columns every table has: an identity key and the insertion time."""

    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True, sort_order=-1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())


class OHLCVModel(_Row, Base):
    """Candles. On PostgreSQL the table is partitioned by ``timestamp`` (migration 0002), so its
    keys hold ``timestamp``; they hold ``symbol`` too, the column Citus would distribute by."""

    __tablename__ = "ohlcv"
    __table_args__ = (
        PrimaryKeyConstraint("id", "symbol", "timestamp"),
        UniqueConstraint(
            "symbol", "exchange", "timeframe", "timestamp", name="ohlcv_unique_candle"
        ),
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


class TradeModel(_Row, Base):
    __tablename__ = "trades"
    __table_args__ = (
        CheckConstraint(one_of("side", Side), name="side"),
        CheckConstraint(one_of("action", TradeAction), name="action"),
        Index("ix_trades_symbol_entry_time", "symbol", "entry_time"),
        Index(
            "ix_trades_exit_time",
            "exit_time",
            postgresql_where=text("exit_time IS NOT NULL"),
            sqlite_where=text("exit_time IS NOT NULL"),
        ),
        Index("ix_trades_action", "action"),
        gin_index("ix_trades_decision_reasons", "decision_reasons"),
    )

    trade_id: Mapped[str] = mapped_column(String(100), unique=True)
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


class PositionModel(_Row, Base):
    __tablename__ = "positions"
    __table_args__ = (
        CheckConstraint(one_of("side", Side), name="side"),
        CheckConstraint(one_of("status", PositionStatus), name="status"),
        # One open position per (symbol, exchange, side): a partial unique index, so two racing
        # writers cannot both open one. Also serves the open-positions lookups.
        Index(
            "uq_positions_open_symbol_exchange_side",
            "symbol",
            "exchange",
            "side",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
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


class LLMAnalysisLogModel(_Row, Base):
    __tablename__ = "llm_analysis_log"
    __table_args__ = (
        CheckConstraint(one_of("status", LLMCallStatus), name="status"),
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


class SystemEventModel(_Row, Base):
    __tablename__ = "system_events"
    __table_args__ = (
        CheckConstraint(one_of("severity", Severity), name="severity"),
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


class DailyPerformanceModel(_Row, Base):
    __tablename__ = "daily_performance"
    __table_args__ = (UniqueConstraint("date", "exchange"),)

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
