"""Market data beside the candles (``models.OHLCVModel``): funding rates (migration 0008)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iftb.data.storage.models import Base, IdentityRow, Money, Rate
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
