"""Market data beside the candles (``models.OHLCVModel``): funding rates (migration 0008), and
the candle catalog: one row per stored series and one per run of missing candles (migration
0010), kept exact by every write of the candle repository so inventories read O(series) rows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, PrimaryKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iftb.data.storage.enums import PriceType
from iftb.data.storage.models import Base, IdentityRow, Money, Rate, one_of
from iftb.data.storage.types import UTCDateTime


class FundingRateModel(IdentityRow, Base):
    """A perpetual's funding rate at one funding time, as the exchange published it."""

    __tablename__ = "funding_rates"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol", "funding_time", name="uq_funding_rates_series_time"),
    )

    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    funding_time: Mapped[datetime] = mapped_column(UTCDateTime)
    rate: Mapped[Decimal] = mapped_column(Rate)
    mark_price: Mapped[Decimal | None] = mapped_column(Money)


class SeriesKeyColumns:
    """The key of a candle series, as ``ohlcv`` spells it."""

    symbol: Mapped[str] = mapped_column(String(20))
    exchange: Mapped[str] = mapped_column(String(50))
    timeframe: Mapped[str] = mapped_column(String(10))
    price_type: Mapped[str] = mapped_column(String(16))


class CandleSeriesModel(SeriesKeyColumns, Base):
    """A stored candle series: its first and last open time and how many candles it holds and
    misses between them. A series without candles has no row."""

    __tablename__ = "candle_series"
    __table_args__ = (
        PrimaryKeyConstraint("symbol", "exchange", "timeframe", "price_type"),
        CheckConstraint(one_of("price_type", PriceType), name="price_type"),
        CheckConstraint("first_open <= last_open", name="span"),
        CheckConstraint(
            "candle_count > 0 AND missing_count >= 0 AND gap_count >= 0", name="counts"
        ),
    )

    first_open: Mapped[datetime] = mapped_column(UTCDateTime)
    last_open: Mapped[datetime] = mapped_column(UTCDateTime)
    candle_count: Mapped[int] = mapped_column(BigInteger)
    missing_count: Mapped[int] = mapped_column(BigInteger)
    gap_count: Mapped[int] = mapped_column(BigInteger)


class CandleGapModel(SeriesKeyColumns, Base):
    """A run of missing candles between two stored ones of a series: the open times of its
    first and last missing candle, and how many are missing."""

    __tablename__ = "candle_gaps"
    __table_args__ = (
        PrimaryKeyConstraint("symbol", "exchange", "timeframe", "price_type", "first_missing"),
        CheckConstraint("first_missing <= last_missing AND missing > 0", name="run"),
    )

    first_missing: Mapped[datetime] = mapped_column(UTCDateTime)
    last_missing: Mapped[datetime] = mapped_column(UTCDateTime)
    missing: Mapped[int] = mapped_column(BigInteger)
