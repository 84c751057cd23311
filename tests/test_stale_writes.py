"""Stale writes on both backends: of two closers exactly one wins, and a write based on an
out-of-date read is a ConflictError that changes nothing (issue #11, items 5 and 6)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from iftb.data.storage import (
    ConflictError,
    DatabaseManager,
    PositionModel,
    PositionRepository,
    TradeRepository,
)
from tests.factories import T0, make_position, make_trade


async def test_of_two_racing_closers_exactly_one_closes_the_trade(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await TradeRepository(session).insert(make_trade(trade_id="t"))
    first_closed = asyncio.Event()

    async def close(exit_price: int, hold_open: asyncio.Event | None) -> str:
        try:
            async with db.get_session() as session:
                await TradeRepository(session).close_trade(
                    "t", Decimal(exit_price), T0 + timedelta(hours=1)
                )
                if hold_open is not None:  # the first closer commits only once the second runs
                    first_closed.set()
                    await asyncio.sleep(0.2)
        except ConflictError:
            return "conflict"
        return "closed"

    async def second() -> str:
        await first_closed.wait()
        return await close(50000, None)

    outcomes = await asyncio.gather(close(41000, first_closed), second())
    assert outcomes == ["closed", "conflict"]
    async with db.get_session() as session:
        stored = await TradeRepository(session).get_by_trade_id("t")
    assert stored is not None
    assert (stored.action, stored.exit_price, stored.version) == ("close", Decimal(41000), 2)
    assert stored.realized_pnl == Decimal(100)  # (41000 - 40000) × 0.1, the first closer's


async def test_closing_a_trade_changed_since_it_was_read_is_a_conflict(
    db: DatabaseManager,
) -> None:
    async with db.get_session() as session:
        trade_id = await TradeRepository(session).insert(make_trade(trade_id="t"))
        stale = await TradeRepository(session).get_by_id(trade_id)
    assert stale is not None and stale.version == 1
    async with db.get_session() as session:
        await TradeRepository(session).update(trade_id, quantity=Decimal("0.2"))
    async with db.get_session() as session:
        with pytest.raises(ConflictError, match="changed since it was read"):
            await TradeRepository(session).update(
                trade_id, expected_version=stale.version, stop_loss=Decimal(39000)
            )
    async with db.get_session() as session:
        stored = await TradeRepository(session).get_by_id(trade_id)
    assert stored is not None
    assert (stored.quantity, stored.stop_loss, stored.version) == (Decimal("0.2"), None, 2)


async def test_a_closed_trade_is_never_reopened_by_an_update(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = TradeRepository(session)
        trade_id = await repo.insert(make_trade(trade_id="t"))
        await repo.close_trade("t", Decimal(41000), T0 + timedelta(hours=1))
        with pytest.raises(ConflictError, match="never re-opened"):
            await repo.update(trade_id, action="open")
        stored = await repo.get_by_id(trade_id)
    assert stored is not None and stored.action == "close"


async def test_a_stale_position_written_back_does_not_reopen_a_liquidation(
    db: DatabaseManager,
) -> None:
    async with db.get_session() as session:
        stale = await PositionRepository(session).update_position(make_position())
    assert stale.id is not None and stale.version == 1
    async with db.get_session() as session:
        await PositionRepository(session).close_position(
            stale.id, status="liquidated", exit_price=Decimal(32000)
        )
    stale.stop_loss = Decimal(39000)  # the risk manager's out-of-date copy, still "open"
    async with db.get_session() as session:
        with pytest.raises(ConflictError, match="already liquidated"):
            await PositionRepository(session).update_position(stale)
    async with db.get_session() as session:
        stored = (
            await session.execute(
                select(PositionModel.status, PositionModel.current_price, PositionModel.stop_loss)
            )
        ).one()
    assert tuple(stored) == ("liquidated", Decimal(32000), None)


async def test_a_position_revalued_since_it_was_read_is_a_conflict(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        stale = await PositionRepository(session).update_position(make_position())
    assert stale.id is not None
    async with db.get_session() as session:
        assert await PositionRepository(session).mark_to_market("BTCUSDT", Decimal(41000)) == 1
    stale.take_profit = Decimal(45000)
    async with db.get_session() as session:
        with pytest.raises(ConflictError, match="changed since it was read"):
            await PositionRepository(session).update_position(stale)
        fresh = await PositionRepository(session).get_position("BTCUSDT")
    assert fresh is not None
    assert (fresh.current_price, fresh.unrealized_pnl, fresh.take_profit, fresh.version) == (
        Decimal(41000),
        Decimal(100),
        None,
        2,
    )
    fresh.take_profit = Decimal(45000)
    async with db.get_session() as session:
        written = await PositionRepository(session).update_position(fresh)
    assert (written.take_profit, written.unrealized_pnl, written.version) == (
        Decimal(45000),
        Decimal(100),
        3,
    )
