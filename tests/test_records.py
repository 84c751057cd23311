"""Domain records refuse what their columns cannot hold, naming the field and the rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from iftb.data.storage import (
    DailyPerformance,
    LLMAnalysisLog,
    OHLCVBar,
    Position,
    SystemEvent,
    Trade,
    ValidationError,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bar(**changes: Any) -> OHLCVBar:
    values: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "timeframe": "1h",
        "timestamp": T0,
        "open": Decimal("100"),
        "high": Decimal("110"),
        "low": Decimal("90"),
        "close": Decimal("105"),
        "volume": Decimal("12.5"),
    }
    return OHLCVBar(**(values | changes))


def trade(**changes: Any) -> Trade:
    values: dict[str, Any] = {
        "trade_id": "t-1",
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "action": "open",
        "entry_price": Decimal("42000.5"),
        "quantity": Decimal("0.01"),
        "entry_time": T0,
    }
    return Trade(**(values | changes))


def test_a_valid_bar_keeps_its_values() -> None:
    assert bar().close == Decimal("105")


def test_floats_are_accepted_through_their_decimal_string() -> None:
    assert bar(volume=0.1).volume == Decimal("0.1")


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"low": Decimal("106")}, "low", "must be ≤ open"),
        ({"high": Decimal("99")}, "high", "must be ≥ open"),
        ({"open": Decimal("0"), "low": Decimal("0")}, "open", "must be > 0"),
        ({"volume": Decimal("-1")}, "volume", "must be ≥ 0"),
        ({"close": Decimal("NaN")}, "close", "not a finite number"),
        ({"high": Decimal("Infinity")}, "high", "not a finite number"),
        ({"volume": float("inf")}, "volume", "not a finite number"),
        ({"open": Decimal("100.000000001")}, "open", "more than 8 decimal places"),
        ({"volume": Decimal("1000000000000")}, "volume", r"does not fit NUMERIC\(20,8\)"),
        ({"timestamp": datetime(2024, 1, 1)}, "timestamp", "naive datetime"),
        ({"timestamp": T0 + timedelta(minutes=30)}, "timestamp", "not on a 1h candle boundary"),
        ({"symbol": "X" * 21}, "symbol", "exceed the limit of 20"),
        ({"symbol": "BTC\x00"}, "symbol", "NUL"),
        ({"open": True}, "open", "got a bool"),
        ({"trades_count": 2**31}, "trades_count", "outside"),
    ],
)
def test_an_invalid_bar_names_the_field_and_the_rule(
    changes: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: .*{rule}") as raised:
        bar(**changes)
    assert raised.value.field == field


def test_trailing_zeros_beyond_the_scale_are_not_extra_places() -> None:
    assert bar(open=Decimal("100.0000000000")).open == Decimal(100)


def test_other_zones_are_normalised_to_utc() -> None:
    tokyo = T0.astimezone(timezone(timedelta(hours=9)))
    stored = bar(timestamp=tokyo).timestamp
    assert stored == T0
    assert stored.tzinfo is UTC


def test_the_largest_money_value_fits() -> None:
    assert trade(entry_price=Decimal("999999999999.99999999")).entry_price == Decimal(
        "999999999999.99999999"
    )


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"side": "sideways"}, "side", "not one of long, short"),
        ({"action": "hold"}, "action", "not one of open, close, liquidated"),
        ({"quantity": Decimal("-1")}, "quantity", "must be > 0"),
        ({"exit_time": T0 - timedelta(seconds=1)}, "exit_time", "before entry_time"),
        ({"leverage": Decimal("1000")}, "leverage", r"NUMERIC\(5,2\)"),
        ({"signal_score": Decimal("0.12345")}, "signal_score", "more than 4 decimal places"),
        ({"decision_reasons": {"x": float("nan")}}, "decision_reasons", "is not a finite number"),
        ({"decision_reasons": {"x": object()}}, "decision_reasons", "not JSON-serialisable"),
        ({"trade_id": None}, "trade_id", "is required"),
    ],
)
def test_an_invalid_trade_names_the_field_and_the_rule(
    changes: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: .*{rule}"):
        trade(**changes)


def test_a_mutated_trade_is_checked_again_by_validate() -> None:
    record = trade()
    record.quantity = Decimal("-5")
    with pytest.raises(ValidationError, match="quantity"):
        record.validate()


def test_enum_fields_accept_their_string_values() -> None:
    assert trade(side="short").side == "short"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Position("BTCUSDT", "binance", "up", Decimal(1), Decimal(1), Decimal(1)), "side"),
        (lambda: SystemEvent("restart", "fatal", "boom"), "severity"),
        (lambda: SystemEvent("x" * 51, "info", "boom"), "event_type"),
        (lambda: LLMAnalysisLog("signal", status="ok"), "status"),
        (lambda: LLMAnalysisLog("signal", prompt_tokens=-1), "prompt_tokens"),
        (lambda: DailyPerformance(date(2024, 1, 1), "binance", total_trades=-1), "total_trades"),
        (lambda: DailyPerformance(datetime(2024, 1, 1, tzinfo=UTC), "binance"), "date"),  # type: ignore[arg-type]
    ],
)
def test_other_records_check_their_columns_too(build: Any, field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: "):
        build()


def test_validation_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="side"):
        trade(side="flat")
