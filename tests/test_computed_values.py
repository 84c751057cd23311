"""Values the layer computes fit where it stores them, never block a close or a rollup, and
round by one rule to the same result on both backends (issue #11, items 13 and 17)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    DailyPerformanceRepository,
    OHLCVBar,
    OHLCVRepository,
    PositionModel,
    PositionRepository,
    TradeRepository,
    ValidationError,
)
from tests.factories import T0, make_position, make_trade

DAY = date(2024, 3, 5)
MORNING = datetime(2024, 3, 5, 8, tzinfo=UTC)


async def closed_trade(
    session: AsyncSession, pnl: str, held: timedelta, opened: datetime = MORNING
) -> None:
    await TradeRepository(session).insert(
        make_trade(
            action="close",
            entry_time=opened,
            exit_time=opened + held,
            exit_price=Decimal(40000),
            realized_pnl=Decimal(pnl),
        )
    )


async def test_a_125x_trade_after_a_large_move_closes_with_its_exact_percentage(
    session: AsyncSession,
) -> None:
    repo = TradeRepository(session)
    await repo.insert(make_trade(trade_id="t", entry_price=Decimal(1), leverage=Decimal(125)))
    closed = await repo.close_trade("t", Decimal(100), T0 + timedelta(hours=1))
    # (100 - 1) × 0.1 = 9.9 on a margin of 0.1 / 125 = 0.0008: 1,237,500 % (> NUMERIC(10,4))
    assert (closed.realized_pnl, closed.realized_pnl_pct) == (Decimal("9.9"), Decimal(1237500))


async def test_a_percentage_beyond_even_the_wide_column_is_unknown_not_a_stuck_trade(
    session: AsyncSession,
) -> None:
    repo = TradeRepository(session)
    await repo.insert(
        make_trade(
            trade_id="t",
            entry_price=Decimal("0.00000001"),
            quantity=Decimal("0.00000001"),
            leverage=Decimal(125),
        )
    )
    closed = await repo.close_trade("t", Decimal(999999), T0 + timedelta(hours=1))
    assert (closed.action, closed.realized_pnl, closed.realized_pnl_pct) == (
        "close",
        Decimal("0.00999999"),
        None,
    )


async def test_a_pnl_beyond_money_is_refused_and_the_trade_stays_open(
    session: AsyncSession,
) -> None:
    repo = TradeRepository(session)
    await repo.insert(make_trade(trade_id="t", entry_price=Decimal(1), quantity=Decimal(10**11)))
    with pytest.raises(ValidationError, match="realized_pnl: .* does not fit NUMERIC"):
        await repo.close_trade("t", Decimal(10**11), T0 + timedelta(hours=1))
    stored = await repo.get_by_trade_id("t")
    assert stored is not None and (stored.action, stored.exit_price) == ("open", None)


async def test_mark_to_market_stores_unknown_for_what_does_not_fit_and_revalues_the_rest(
    session: AsyncSession,
) -> None:
    repo = PositionRepository(session)
    normal = await repo.update_position(make_position(side="long"))
    extreme = await repo.update_position(
        make_position(
            side="short",
            entry_price=Decimal(900000000000),
            quantity=Decimal(900000000000),
            margin=Decimal("0.00000001"),
        )
    )
    assert await repo.mark_to_market("BTCUSDT", Decimal(41000)) == 2
    rows = {
        row.id: row
        for row in await session.execute(
            select(
                PositionModel.id,
                PositionModel.current_price,
                PositionModel.unrealized_pnl,
                PositionModel.unrealized_pnl_pct,
            )
        )
    }
    assert tuple(rows[normal.id][1:]) == (Decimal(41000), Decimal(100), Decimal("12.5000"))
    assert tuple(rows[extreme.id][1:]) == (Decimal(41000), None, None)


async def test_a_day_with_a_profit_factor_beyond_its_column_still_rolls_up(
    session: AsyncSession,
) -> None:
    await closed_trade(session, "100000000000", timedelta(hours=1))
    await closed_trade(session, "-0.00000001", timedelta(hours=2))
    await closed_trade(session, "1", timedelta(hours=1), opened=MORNING + timedelta(days=1))
    repo = DailyPerformanceRepository(session)
    day = await repo.rollup(DAY, starting_balance=Decimal("0.00000001"))
    assert (day.profit_factor, day.net_pnl_pct) == (None, None)  # 1e19 and 1e21: unknown
    assert day.net_pnl == Decimal("99999999999.99999999")
    following = await repo.rollup(DAY + timedelta(days=1))
    assert following.starting_balance == day.ending_balance


async def test_the_daily_win_rate_is_rounded_once_from_the_counts(session: AsyncSession) -> None:
    for number in range(101):
        await closed_trade(session, "1" if number < 50 else "-1", timedelta(minutes=number + 1))
    day = await DailyPerformanceRepository(session).rollup(DAY, starting_balance=Decimal(1000))
    assert day.win_rate == Decimal("49.50")  # 50 / 101 = 49.504…, not 49.5050 → 49.51


async def test_durations_are_exact_and_rounded_half_up_alike_on_both_backends(
    session: AsyncSession,
) -> None:
    await closed_trade(session, "1", timedelta(milliseconds=600))
    await closed_trade(session, "1", timedelta(minutes=2, milliseconds=400))
    stats = await TradeRepository(session).get_statistics(days=2000)
    assert stats.avg_holding_time == timedelta(seconds=60, milliseconds=500)
    day = await DailyPerformanceRepository(session).rollup(DAY, starting_balance=Decimal(1000))
    assert day.avg_trade_duration_minutes == 1  # 60.5 s is 1.008 minutes


async def test_a_half_minute_average_rounds_up(session: AsyncSession) -> None:
    await closed_trade(session, "1", timedelta(seconds=90))
    day = await DailyPerformanceRepository(session).rollup(DAY, starting_balance=Decimal(1000))
    assert day.avg_trade_duration_minutes == 2


async def test_a_computed_zero_is_stored_without_a_sign(session: AsyncSession) -> None:
    repo = PositionRepository(session)
    await repo.update_position(make_position(quantity=Decimal("0.00000001")))
    await repo.mark_to_market("BTCUSDT", Decimal("39999.99999999"))  # -1e-16 rounds to zero
    stored = await repo.get_position("BTCUSDT")
    assert stored is not None and stored.unrealized_pnl is not None
    assert (str(stored.unrealized_pnl), stored.unrealized_pnl.is_signed()) == ("0E-8", False)


async def test_the_views_round_minutes_half_up_alike_on_both_backends(
    session: AsyncSession,
) -> None:
    await closed_trade(session, "1", timedelta(seconds=100))  # 1.67 minutes
    await closed_trade(session, "1", timedelta(seconds=29, milliseconds=999))
    rows = await session.execute(
        text("SELECT duration_minutes FROM v_recent_trades ORDER BY duration_minutes")
    )
    assert [row.duration_minutes for row in rows] == [0, 2]


async def test_a_resampled_candle_whose_sums_do_not_fit_is_refused(session: AsyncSession) -> None:
    heavy = Decimal(400000000000)  # three of them sum past NUMERIC(20, 8)
    bars = [
        OHLCVBar(
            symbol="BTCUSDT",
            exchange="binance",
            timeframe="1m",
            timestamp=MORNING + timedelta(minutes=minute),
            open=Decimal(100),
            high=Decimal(100),
            low=Decimal(100),
            close=Decimal(100),
            volume=heavy,
        )
        for minute in range(3)
    ]
    repo = OHLCVRepository(session)
    await repo.insert_many(bars)
    with pytest.raises(ValidationError, match="3m candle opening .* volume: .* does not fit"):
        await repo.resample("BTCUSDT", "1m", "3m", MORNING, MORNING + timedelta(minutes=2))
