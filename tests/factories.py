"""Record factories for tests: valid by default, any field overridable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from itertools import count
from typing import Any

from iftb.data.storage import OHLCVBar, Position, Trade, parse_timeframe

T0 = datetime(2024, 1, 1, tzinfo=UTC)
_numbers = count(1)


def make_trade(**fields: Any) -> Trade:
    values: dict[str, Any] = {
        "trade_id": f"trade-{next(_numbers)}",
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "action": "open",
        "entry_price": Decimal("40000"),
        "quantity": Decimal("0.1"),
        "leverage": Decimal("5"),
        "entry_time": T0,
    }
    return Trade(**(values | fields))


def make_position(**fields: Any) -> Position:
    values: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "entry_price": Decimal("40000"),
        "quantity": Decimal("0.1"),
        "margin": Decimal("800"),
        "leverage": Decimal("5"),
        "entry_time": T0,
    }
    return Position(**(values | fields))


def make_bar(step: int = 0, timeframe: str = "1h", price: int = 100) -> OHLCVBar:
    """A valid BTCUSDT candle, ``step`` candles of ``timeframe`` after ``T0``."""
    level = Decimal(price + step)
    return OHLCVBar(
        "BTCUSDT", "binance", timeframe, parse_timeframe(timeframe).shift(T0, step), level,
        level + 1, level - 1, level, Decimal(1),
    )  # fmt: skip
