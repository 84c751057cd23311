"""Money is exact and time is UTC, to the last digit, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import DatabaseManager, TradeModel, ValidationError
from iftb.data.storage.sql_functions import (
    dec_avg,
    dec_div,
    dec_max,
    dec_min,
    dec_mul,
    dec_round,
    dec_sign,
    dec_sub,
    dec_sum,
)

T0 = datetime(2024, 3, 10, 12, tzinfo=UTC)


async def store_trade(session: AsyncSession, number: int, **values: object) -> None:
    row = {
        "trade_id": f"t-{number}",
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "action": "close",
        "entry_price": Decimal(1),
        "quantity": Decimal(1),
        "entry_time": T0,
    }
    await session.execute(insert(TradeModel).values(row | values))


@pytest.mark.parametrize("value", ["999999999999.99999999", "0.00000001", "-123.45678901", "0"])
async def test_money_round_trips_to_the_last_digit(session: AsyncSession, value: str) -> None:
    await store_trade(session, 1, realized_pnl=Decimal(value))
    stored = await session.scalar(select(TradeModel.realized_pnl))
    assert stored == Decimal(value)
    assert isinstance(stored, Decimal)


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    value=st.decimals(
        min_value=Decimal("-999999999999.99999999"),
        max_value=Decimal("999999999999.99999999"),
        places=8,
        allow_nan=False,
        allow_infinity=False,
    )
)
async def test_any_money_value_that_fits_round_trips(session: AsyncSession, value: Decimal) -> None:
    await session.execute(delete(TradeModel))
    await store_trade(session, 1, realized_pnl=value)
    assert await session.scalar(select(TradeModel.realized_pnl)) == value


async def test_timestamps_come_back_aware_utc(session: AsyncSession) -> None:
    new_york = (T0 + timedelta(microseconds=123456)).astimezone(timezone(timedelta(hours=-5)))
    await store_trade(session, 1, entry_time=new_york)
    entry_time, created_at = (
        await session.execute(select(TradeModel.entry_time, TradeModel.created_at))
    ).one()
    assert entry_time == new_york
    assert entry_time.tzinfo is UTC
    assert entry_time.microsecond == 123456
    assert created_at.tzinfo is UTC
    assert abs(created_at - datetime.now(UTC)) < timedelta(minutes=5)


async def test_a_naive_timestamp_is_a_validation_error_and_writes_nothing(
    db: DatabaseManager,
) -> None:
    with pytest.raises(ValidationError, match="naive datetime"):
        async with db.get_session() as session:
            await store_trade(session, 1)
            await store_trade(session, 2, entry_time=datetime(2024, 1, 1))
    async with db.get_session() as session:
        assert await session.scalar(select(TradeModel.id)) is None


async def test_exact_aggregates_do_not_round_through_floats(session: AsyncSession) -> None:
    values = [
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("999999999999.99999999"),
        Decimal("-9"),
        Decimal("10"),
    ]
    for number, value in enumerate(values):
        await store_trade(session, number, realized_pnl=value)
    pnl = TradeModel.realized_pnl
    total, largest, smallest, mean = (
        await session.execute(select(dec_sum(pnl), dec_max(pnl), dec_min(pnl), dec_avg(pnl)))
    ).one()
    assert total == sum(values)
    assert largest == max(values)  # SQLite's own MAX would compare the texts: '9' > '10'
    assert smallest == min(values)
    assert mean.quantize(Decimal("0.00000001")) == (sum(values) / len(values)).quantize(
        Decimal("0.00000001")
    )


async def test_exact_arithmetic_and_sign(session: AsyncSession) -> None:
    a, b = literal(Decimal("1234.56789012")), literal(Decimal("0.00000003"))
    product, difference, ratio, by_zero, rounded, sign = (
        await session.execute(
            select(
                dec_mul(a, b),
                dec_sub(b, a),
                dec_div(a, literal(Decimal(4))),
                dec_div(a, literal(Decimal(0))),
                dec_round(literal(Decimal("2.345")), 2),
                dec_sign(dec_sub(b, a)),
            )
        )
    ).one()
    assert product == Decimal("1234.56789012") * Decimal("0.00000003")
    assert difference == Decimal("-1234.56789009")
    assert ratio == Decimal("308.64197253")
    assert by_zero is None
    assert rounded == Decimal("2.35")
    assert sign == -1


async def test_running_sum_window_is_exact(session: AsyncSession) -> None:
    for number in range(5):
        await store_trade(
            session, number, realized_pnl=Decimal("0.1"), exit_time=T0 + timedelta(hours=number)
        )
    running = dec_sum(TradeModel.realized_pnl).over(order_by=TradeModel.exit_time)
    sums = (await session.scalars(select(running).order_by(TradeModel.exit_time))).all()
    assert sums == [Decimal("0.1") * n for n in range(1, 6)]
