"""DailyPerformanceRepository on both backends: idempotent rollups, upserts, the equity curve."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    DailyPerformance,
    DailyPerformanceRepository,
    TradeRepository,
    ValidationError,
)
from tests.factories import make_trade

DAY = date(2024, 3, 5)
MORNING = datetime(2024, 3, 5, 8, tzinfo=UTC)


async def close_trade(session: AsyncSession, hour: int, pnl: str, **fields: object) -> None:
    await TradeRepository(session).insert(
        make_trade(
            action="close",
            entry_time=MORNING + timedelta(hours=hour - 1),
            exit_time=MORNING + timedelta(hours=hour),
            exit_price=Decimal("40100"),
            realized_pnl=Decimal(pnl),
            fee=Decimal("1"),
            **fields,
        )
    )


async def test_rollup_computes_the_day_from_its_closed_trades(session: AsyncSession) -> None:
    for hour, pnl in [(1, "100"), (2, "-300"), (3, "50"), (4, "0")]:
        await close_trade(session, hour, pnl)
    await close_trade(session, 30, "999")  # the next day
    await close_trade(session, 2, "999", exchange="bybit")
    day = await DailyPerformanceRepository(session).rollup(DAY, starting_balance=Decimal("10000"))
    assert (day.total_trades, day.winning_trades, day.losing_trades) == (4, 2, 1)
    assert (day.gross_profit, day.gross_loss, day.net_pnl) == (
        Decimal(150),
        Decimal(300),
        Decimal(-150),
    )
    assert day.win_rate == Decimal("50.00")
    assert day.net_pnl_pct == Decimal("-1.5000")
    assert day.total_fees == Decimal(4)
    assert (day.ending_balance, day.peak_balance) == (Decimal(9850), Decimal(10100))
    assert day.max_drawdown_amount == Decimal(300)
    assert day.max_drawdown == Decimal("2.9703")  # 300 / 10100
    assert day.profit_factor == Decimal("0.5000")
    assert (day.avg_position_size, day.max_position_size) == (Decimal(4000), Decimal(4000))
    assert day.total_volume == Decimal(4 * 4000 + 4 * 4010)
    assert day.avg_trade_duration_minutes == 60
    assert (day.longest_winning_streak, day.longest_losing_streak) == (1, 1)


async def test_rollup_is_idempotent_and_a_late_trade_corrects_the_day(
    session: AsyncSession,
) -> None:
    repo = DailyPerformanceRepository(session)
    await close_trade(session, 1, "100")
    first = await repo.rollup(DAY, starting_balance=Decimal("1000"))
    again = await repo.rollup(DAY, starting_balance=Decimal("1000"))
    assert (again.id, again.net_pnl, again.total_trades) == (first.id, first.net_pnl, 1)
    await close_trade(session, 5, "-40")
    corrected = await repo.rollup(DAY, starting_balance=Decimal("1000"))
    assert (corrected.id, corrected.total_trades, corrected.net_pnl) == (first.id, 2, Decimal(60))
    assert await repo.get_range(DAY, DAY) == [corrected]


async def test_rollup_of_a_quiet_day_carries_the_balance(session: AsyncSession) -> None:
    repo = DailyPerformanceRepository(session)
    await close_trade(session, 1, "25")
    await repo.rollup(DAY, starting_balance=Decimal("1000"))
    quiet = await repo.rollup(DAY + timedelta(days=1))  # starts from yesterday's ending balance
    assert (quiet.total_trades, quiet.starting_balance, quiet.ending_balance) == (
        0,
        Decimal(1025),
        Decimal(1025),
    )


async def test_rollup_without_a_known_starting_balance_is_refused(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="starting_balance"):
        await DailyPerformanceRepository(session).rollup(DAY)


async def test_rolling_a_past_day_again_rolls_the_later_days_forward(
    session: AsyncSession,
) -> None:
    repo = DailyPerformanceRepository(session)
    await close_trade(session, 1, "100")
    await close_trade(session, 25, "10")  # the next day
    await close_trade(session, 49, "-5")  # the day after
    await repo.rollup(DAY, starting_balance=Decimal(1000))
    await repo.rollup(DAY + timedelta(days=1))
    # a deposit of 500 before the third day: its balance is not the previous ending balance
    await repo.rollup(DAY + timedelta(days=2), starting_balance=Decimal(1610))
    await close_trade(session, 2, "-40")  # a late trade on the first day
    await repo.rollup(DAY)
    days = await repo.get_range(DAY, DAY + timedelta(days=2))
    assert [(d.starting_balance, d.ending_balance) for d in days] == [
        (Decimal(1000), Decimal(1060)),  # its own starting balance kept: no day before it
        (Decimal(1060), Decimal(1070)),
        (Decimal(1570), Decimal(1565)),  # the deposit of 500 kept
    ]
    returns = [60 / 1000, 10 / 1060, -5 / 1570]
    expected = statistics.fmean(returns) / statistics.stdev(returns) * 365**0.5
    assert days[2].sharpe_ratio == Decimal(str(round(expected, 4)))


async def test_sharpe_ratio_over_trailing_daily_returns(session: AsyncSession) -> None:
    repo = DailyPerformanceRepository(session)
    balance = Decimal(1000)
    for offset, pnl in enumerate(["10", "-5", "20"]):
        await close_trade(session, 24 * offset + 1, pnl)
        day = await repo.rollup(DAY + timedelta(days=offset), starting_balance=balance)
        balance = day.ending_balance or balance
    returns = [0.01, -5 / 1010, 20 / 1005]

    expected = statistics.fmean(returns) / statistics.stdev(returns) * 365**0.5
    assert day.sharpe_ratio == Decimal(str(round(expected, 4)))


async def test_upsert_get_and_equity_curve(session: AsyncSession) -> None:
    repo = DailyPerformanceRepository(session)
    for offset, ending in enumerate(["1000", "1010.5", "990.25"]):
        await repo.upsert(
            DailyPerformance(
                date=DAY + timedelta(days=offset),
                exchange="binance",
                ending_balance=Decimal(ending),
            )
        )
    await repo.upsert(
        DailyPerformance(date=DAY, exchange="binance", ending_balance=Decimal("1001"))
    )
    assert await repo.get(DAY + timedelta(days=9)) is None
    stored = await repo.get(DAY)
    assert stored is not None and stored.ending_balance == Decimal(1001)
    assert await repo.get_equity_curve(DAY, DAY + timedelta(days=2)) == [
        (DAY, Decimal("1001")),
        (DAY + timedelta(days=1), Decimal("1010.5")),
        (DAY + timedelta(days=2), Decimal("990.25")),
    ]


async def test_a_datetime_is_not_a_date(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="^date: "):
        await DailyPerformanceRepository(session).get(MORNING)  # type: ignore[arg-type]
