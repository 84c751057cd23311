"""TradeRepository on both backends: the journal, closing with PnL, and statistics in SQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    ConflictError,
    DatabaseManager,
    DuplicateError,
    NotFoundError,
    TradeModel,
    TradeRepository,
    TradeStatistics,
    ValidationError,
)
from tests.factories import T0, make_trade

NOW = datetime.now(UTC).replace(microsecond=0)


async def test_insert_returns_the_database_id_and_round_trips(session: AsyncSession) -> None:
    trade = make_trade(
        decision_reasons={"rsi": 28.5, "why": ["oversold", "news"]}, signal_score=Decimal("0.8125")
    )
    repo = TradeRepository(session)
    trade_id = await repo.insert(trade)
    stored = await repo.get_by_id(trade_id)
    assert stored is not None
    assert stored.id == trade_id
    assert (stored.entry_price, stored.decision_reasons, stored.signal_score) == (
        trade.entry_price,
        trade.decision_reasons,
        Decimal("0.8125"),
    )
    assert stored.entry_time == T0
    assert stored.created_at is not None


async def test_a_reused_trade_id_is_a_duplicate_and_the_session_stays_usable(
    session: AsyncSession,
) -> None:
    repo = TradeRepository(session)
    await repo.insert(make_trade(trade_id="same"))
    with pytest.raises(DuplicateError, match="trade_id"):
        await repo.insert(make_trade(trade_id="same"))
    await repo.insert(make_trade(trade_id="other"))
    assert len(await repo.get_recent()) == 2


async def test_update_changes_fields_and_moves_updated_at(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        trade_id = await TradeRepository(session).insert(make_trade())
    async with db.get_session() as session:
        before = await TradeRepository(session).get_by_id(trade_id)
    await asyncio.sleep(0.01)  # SQLite's clock has millisecond resolution
    async with db.get_session() as session:
        updated = await TradeRepository(session).update(
            trade_id, stop_loss=Decimal("39000"), llm_score=Decimal("0.5")
        )
    assert before is not None and before.updated_at is not None
    assert updated.stop_loss == Decimal("39000")
    assert updated.updated_at is not None and updated.updated_at > before.updated_at


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"colour": "red"}, ValidationError, "colour: not an updatable"),
        ({"id": 7}, ValidationError, "id: not an updatable"),
        ({"quantity": Decimal("-1")}, ValidationError, "quantity: must be > 0"),
        ({"side": "up"}, ValidationError, "side: 'up' is not one of"),
        ({"exit_time": T0 - timedelta(days=1)}, ValidationError, "exit_time: .* before entry_time"),
    ],
)
async def test_bad_updates_are_refused_and_change_nothing(
    session: AsyncSession, fields: dict[str, object], error: type[Exception], message: str
) -> None:
    repo = TradeRepository(session)
    trade_id = await repo.insert(make_trade())
    with pytest.raises(error, match=message):
        await repo.update(trade_id, **fields)
    assert await repo.get_by_id(trade_id) == await repo.get_by_id(trade_id)
    stored = await repo.get_by_id(trade_id)
    assert stored is not None and stored.quantity == Decimal("0.1") and stored.side == "long"


async def test_updating_a_missing_trade_is_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFoundError, match="no trade with id 404"):
        await TradeRepository(session).update(404, fee=Decimal(1))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"side": "sideways"}, "side"),
        ({"quantity": Decimal("-0.1")}, "quantity"),
        ({"entry_time": datetime(2024, 1, 1)}, "entry_time"),
        ({"exit_time": T0 - timedelta(seconds=1)}, "exit_time"),
    ],
)
async def test_bad_trades_are_refused_with_nothing_written(
    session: AsyncSession, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: "):
        await TradeRepository(session).insert(make_trade(**fields))
    assert await session.scalar(select(func.count()).select_from(TradeModel)) == 0


async def test_recent_and_by_symbol_are_newest_first(session: AsyncSession) -> None:
    repo = TradeRepository(session)
    for hour, symbol, exchange in [
        (1, "BTCUSDT", "binance"),
        (3, "ETHUSDT", "binance"),
        (2, "BTCUSDT", "binance"),
        (4, "BTCUSDT", "bybit"),
    ]:
        await repo.insert(
            make_trade(symbol=symbol, exchange=exchange, entry_time=T0 + timedelta(hours=hour))
        )
    assert [t.entry_time.hour for t in await repo.get_recent(limit=3)] == [4, 3, 2]
    assert [t.entry_time.hour for t in await repo.get_by_symbol("BTCUSDT")] == [2, 1]
    assert await repo.get_by_trade_id("missing") is None


@pytest.mark.parametrize(
    ("side", "exit_price", "pnl", "pct"),
    [
        ("long", "41000", "99.00000000", "12.3750"),
        ("short", "41000", "-101.00000000", "-12.6250"),
        ("short", "39000", "99.00000000", "12.3750"),
    ],
)
async def test_close_trade_computes_pnl_after_fees_and_pct_of_margin(
    session: AsyncSession, side: str, exit_price: str, pnl: str, pct: str
) -> None:
    # entry 40000 × 0.1 at 5x: margin 800; entry fee 0.4 + exit fee 0.6 = 1.
    repo = TradeRepository(session)
    await repo.insert(make_trade(trade_id="t", side=side, fee=Decimal("0.4")))
    closed = await repo.close_trade(
        "t", Decimal(exit_price), T0 + timedelta(hours=5), fee=Decimal("0.6")
    )
    assert (closed.realized_pnl, closed.realized_pnl_pct) == (Decimal(pnl), Decimal(pct))
    assert (closed.action, closed.fee, closed.exit_time) == (
        "close",
        Decimal(1),
        T0 + timedelta(hours=5),
    )


async def test_close_trade_counts_the_funding_the_trade_received_or_paid(
    session: AsyncSession,
) -> None:
    repo = TradeRepository(session)
    await repo.insert(make_trade(trade_id="t", entry_price=Decimal(100), quantity=Decimal(1),
                                 fee=Decimal(1), funding=Decimal("-5")))  # fmt: skip
    closed = await repo.close_trade("t", Decimal(110), T0 + timedelta(hours=9), fee=Decimal(1))
    assert closed.realized_pnl == Decimal(3)  # 10 move - 2 fees - 5 funding paid
    statistics = await repo.get_statistics(days=100_000)
    assert (statistics.total_funding, statistics.pnl_before_costs) == (Decimal(-5), Decimal(10))


async def test_closing_twice_or_a_missing_trade_is_refused(session: AsyncSession) -> None:
    repo = TradeRepository(session)
    await repo.insert(make_trade(trade_id="t"))
    await repo.close_trade("t", Decimal(40000), T0 + timedelta(hours=1), action="liquidated")
    with pytest.raises(ConflictError, match="already liquidated"):
        await repo.close_trade("t", Decimal(40000), T0 + timedelta(hours=2))
    with pytest.raises(NotFoundError):
        await repo.close_trade("nope", Decimal(40000), T0)
    with pytest.raises(ValidationError, match="action"):
        await repo.close_trade("t", Decimal(40000), T0, action="open")


# --- statistics ---------------------------------------------------------------------------


async def test_statistics_of_an_empty_window(session: AsyncSession) -> None:
    assert await TradeRepository(session).get_statistics() == TradeStatistics()


async def test_statistics_equal_an_independent_computation(session: AsyncSession) -> None:
    rng = random.Random(20241125)
    repo = TradeRepository(session)
    included = []
    for number in range(300):
        entry = NOW - timedelta(days=rng.uniform(0.5, 25), minutes=number)
        exit_time = entry + timedelta(minutes=rng.randint(1, 600))
        pnl = Decimal(rng.choice([0, rng.randint(-50_000_000, 50_000_000)])) / 10**6
        kind = rng.random()
        trade = make_trade(
            trade_id=f"s{number}",
            entry_time=entry,
            exit_time=exit_time,
            action="liquidated" if kind < 0.1 else "close",
            realized_pnl=pnl,
            fee=Decimal(rng.randint(0, 10**6)) / 10**6,
            exchange="bybit" if 0.1 <= kind < 0.2 else "binance",
        )
        if 0.2 <= kind < 0.3:  # still open: excluded
            trade.action, trade.exit_time, trade.realized_pnl = "open", None, None
        await repo.insert(trade)
        if trade.exchange == "binance" and trade.action != "open":
            included.append(trade)
    await repo.insert(
        make_trade(
            trade_id="old",
            action="close",
            entry_time=NOW - timedelta(days=60),
            exit_time=NOW - timedelta(days=59),
            realized_pnl=Decimal(999),
        )
    )

    stats = await repo.get_statistics(days=30)

    assert stats == expected_statistics(included)


def expected_statistics(trades: list) -> TradeStatistics:  # type: ignore[type-arg]
    trades = sorted(trades, key=lambda t: (t.exit_time, t.id or 0))
    pnls = [t.realized_pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    quantum, money = Decimal("0.0001"), Decimal("0.00000001")
    running, peak, worst_fall, worst_ratio = Decimal(0), Decimal(0), Decimal(0), Decimal(0)
    for pnl in pnls:
        running += pnl
        peak = max(peak, running)
        worst_fall = max(worst_fall, peak - running)
        if peak > 0:
            worst_ratio = max(worst_ratio, (peak - running) / peak)
    streaks = {1: 0, -1: 0}
    current, length = 0, 0
    for pnl in pnls:
        outcome = (pnl > 0) - (pnl < 0)
        length = length + 1 if outcome == current else 1
        current = outcome
        if outcome:
            streaks[outcome] = max(streaks[outcome], length)
    held = sum((t.exit_time - t.entry_time).total_seconds() for t in trades) / len(trades)
    return TradeStatistics(
        total_trades=len(trades),
        winning_trades=len(wins),
        losing_trades=len(losses),
        breakeven_trades=len(trades) - len(wins) - len(losses),
        win_rate=(Decimal(len(wins)) / len(trades) * 100).quantize(quantum),
        gross_profit=sum(wins, Decimal(0)),
        gross_loss=-sum(losses, Decimal(0)),
        net_pnl=sum(pnls, Decimal(0)),
        total_fees=sum((t.fee for t in trades), Decimal(0)),
        total_funding=sum((t.funding for t in trades), Decimal(0)),
        pnl_before_costs=sum(pnls, Decimal(0))
        + sum((t.fee for t in trades), Decimal(0))
        - sum((t.funding for t in trades), Decimal(0)),
        avg_win=(sum(wins, Decimal(0)) / len(wins)).quantize(money),
        avg_loss=(-sum(losses, Decimal(0)) / len(losses)).quantize(money),
        largest_win=max(wins),
        largest_loss=min(losses),
        profit_factor=(sum(wins, Decimal(0)) / -sum(losses, Decimal(0))).quantize(quantum),
        expectancy=(sum(pnls, Decimal(0)) / len(trades)).quantize(money),
        max_drawdown_amount=worst_fall,
        max_drawdown_pct=(worst_ratio * 100).quantize(quantum),
        avg_holding_time=timedelta(seconds=held),
        longest_winning_streak=streaks[1],
        longest_losing_streak=streaks[-1],
    )


async def test_statistics_by_symbol_and_without_losses(session: AsyncSession) -> None:
    repo = TradeRepository(session)
    for number, (symbol, pnl) in enumerate(
        [("BTCUSDT", "10"), ("BTCUSDT", "0"), ("ETHUSDT", "-5")]
    ):
        await repo.insert(
            make_trade(
                trade_id=f"x{number}",
                symbol=symbol,
                action="close",
                entry_time=NOW - timedelta(hours=3),
                exit_time=NOW - timedelta(hours=2, minutes=number),
                realized_pnl=Decimal(pnl),
            )
        )
    btc = await repo.get_statistics(symbol="BTCUSDT")
    assert (btc.total_trades, btc.winning_trades, btc.breakeven_trades, btc.losing_trades) == (
        2,
        1,
        1,
        0,
    )
    assert btc.profit_factor is None
    assert btc.win_rate == Decimal("50.0000")
