"""The futures ledger's tables: orders, their fills, and funding payments (migration 0007).

Every row carries its scope (``models.ScopeColumns``); uniqueness holds per scope, as the
journal's does. Trades and positions are derived from these rows (``ledger_math``). Amount rules
(positive quantities, fills within their order) are the records' and the repository's: SQLite
stores exact decimals as text, which a CHECK would compare as text.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    FetchedValue,
    ForeignKey,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from iftb.data.storage.enums import OrderSide, OrderStatus, OrderType, Side
from iftb.data.storage.models import (
    Base,
    BigId,
    IdentityRow,
    Money,
    Rate,
    ScopeColumns,
    index_in_scope,
    one_of,
    scope_rules,
    unique_in_scope,
)
from iftb.data.storage.sql_functions import utcnow
from iftb.data.storage.types import JSONDocument, UTCDateTime


class OrderModel(ScopeColumns, IdentityRow, Base):
    """An order as the exchange knows it; its fills move its filled quantity and status."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(one_of("side", OrderSide), name="side"),
        CheckConstraint(one_of("position_side", Side), name="position_side"),
        CheckConstraint(one_of("order_type", OrderType), name="order_type"),
        CheckConstraint(one_of("status", OrderStatus), name="status"),
        *scope_rules(),
        *unique_in_scope("orders", "client_order_id", "exchange", "client_order_id"),
        *unique_in_scope(
            "orders",
            "exchange_order_id",
            "exchange",
            "exchange_order_id",
            where="exchange_order_id IS NOT NULL",
        ),
        *index_in_scope("orders", "trade_id", "trade_id"),  # a trade's orders: every fill's
    )

    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    client_order_id: Mapped[str] = mapped_column(String(100))
    exchange_order_id: Mapped[str | None] = mapped_column(String(100))
    trade_id: Mapped[str] = mapped_column(String(100))
    side: Mapped[str] = mapped_column(String(4))
    position_side: Mapped[str] = mapped_column(String(10))
    order_type: Mapped[str] = mapped_column(String(30))
    time_in_force: Mapped[str | None] = mapped_column(String(10))
    reduce_only: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    quantity: Mapped[Decimal] = mapped_column(Money)
    filled_quantity: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))
    average_fill_price: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'new'"))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())
    updated_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, server_default=utcnow(), server_onupdate=FetchedValue()
    )
    raw: Mapped[Any | None] = mapped_column(JSONDocument)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class FillModel(ScopeColumns, IdentityRow, Base):
    """One execution. Unique per exchange fill id: a replayed fill is stored once. A fill may
    arrive before its order: ``order_id`` is set when the order is known."""

    __tablename__ = "fills"
    __table_args__ = (
        CheckConstraint(one_of("side", OrderSide), name="side"),
        *scope_rules(),
        *unique_in_scope("fills", "exchange_fill_id", "exchange", "symbol", "exchange_fill_id"),
    )

    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    exchange_fill_id: Mapped[str] = mapped_column(String(100))
    client_order_id: Mapped[str] = mapped_column(String(100))
    order_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))
    fee_asset: Mapped[str | None] = mapped_column(String(20))
    fee_quote: Mapped[Decimal | None] = mapped_column(Money)
    """The fee's value in the quote asset, when it was charged in another (e.g. BNB)."""
    is_maker: Mapped[bool | None] = mapped_column(Boolean)
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    """The exchange's own order of its fills, where it gives one: it orders fills of one
    instant before their ids do (migration 0013)."""


class FundingPaymentModel(ScopeColumns, IdentityRow, Base):
    """Funding paid (negative) or received (positive) on a position at one funding time."""

    __tablename__ = "funding_payments"
    __table_args__ = (
        CheckConstraint(one_of("position_side", Side), name="position_side"),
        *scope_rules(),
        *unique_in_scope(
            "funding_payments",
            "symbol_side_time",
            "exchange",
            "symbol",
            "position_side",
            "funding_time",
        ),
    )

    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    position_side: Mapped[str] = mapped_column(String(10))
    funding_time: Mapped[datetime] = mapped_column(UTCDateTime)
    rate: Mapped[Decimal | None] = mapped_column(Rate)
    position_size: Mapped[Decimal | None] = mapped_column(Money)
    mark_price: Mapped[Decimal | None] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    trade_id: Mapped[str | None] = mapped_column(String(100))
    reported_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The time the exchange reported when it was not exactly the funding boundary it settles
    (``funding_time``): websocket and REST stamp one payment apart (migration 0013)."""
