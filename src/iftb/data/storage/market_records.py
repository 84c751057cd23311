"""Records of the market data beside the candles: a funding rate (``market_models``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from iftb.data.storage.market_models import FundingRateModel
from iftb.data.storage.records import ValidatedRecord, record_rules
from iftb.data.storage.validation import Rule, positive, required_columns


@dataclass(frozen=True, slots=True)
class FundingRate(ValidatedRecord):
    """A perpetual's funding rate at one funding time: longs pay shorts ``rate`` × position
    value when it is positive, shorts pay longs when negative."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(FundingRateModel, unchecked=("id",))
    _required: ClassVar[frozenset[str]] = required_columns(FundingRateModel)

    symbol: str
    funding_time: datetime
    rate: Decimal
    exchange: str = "binance"
    mark_price: Decimal | None = None

    def _check_invariants(self) -> None:
        positive("mark_price", self.mark_price)
