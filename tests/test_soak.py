"""Soak: a bounded mixed workload from several tasks — ingest, upserts, trades opened and closed,
positions, events, LLM calls, reads — ending with a checksum of every table against the state
the workload must have left. CI runs the short version; ``pytest --soak`` the long one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    DatabaseManager,
    LLMAnalysisLog,
    LLMAnalysisLogModel,
    LLMAnalysisLogRepository,
    OHLCVBar,
    OHLCVModel,
    OHLCVRepository,
    Position,
    PositionModel,
    PositionRepository,
    SystemEventModel,
    SystemEventRepository,
    Trade,
    TradeModel,
    TradeRepository,
)
from iftb.data.storage.sql_functions import dec_sum

T0 = datetime(2023, 1, 1, tzinfo=UTC)
TASKS = 4
WINDOW, STEP = 20, 10  # each iteration upserts 20 candles, 10 of them new
QTY = Decimal("0.5")


def price(task: int, minute: int) -> Decimal:
    return Decimal(1000 + task * 100) + Decimal(minute % 97) / 8


def candle(task: int, minute: int) -> OHLCVBar:
    level = price(task, minute)
    return OHLCVBar(
        f"SOAK{task}USDT",
        "binance",
        "1m",
        T0 + timedelta(minutes=minute),
        level,
        level + 1,
        level - 1,
        level,
        Decimal(minute),
    )


async def worker(db: DatabaseManager, task: int, iterations: int) -> None:
    for n in range(iterations):
        batch = [candle(task, m) for m in range(n * STEP, n * STEP + WINDOW)]

        async def upsert(session: AsyncSession, batch: list[OHLCVBar] = batch) -> int:
            return await OHLCVRepository(session).upsert_many(batch)

        await db.run_idempotent(upsert)
        trade_id = f"soak-{task}-{n}"
        entry, exit_ = batch[0], batch[-1]
        async with db.get_session() as session:
            await TradeRepository(session).insert(
                Trade(
                    trade_id=trade_id,
                    symbol=entry.symbol,
                    exchange="binance",
                    side="long",
                    action="open",
                    entry_price=entry.close,
                    quantity=QTY,
                    entry_time=entry.timestamp,
                )
            )
            await SystemEventRepository(session).log_event(
                "soak", "info", trade_id, trade_id=trade_id
            )
            await LLMAnalysisLogRepository(session).log(
                LLMAnalysisLog(
                    analysis_type="soak",
                    symbol=entry.symbol,
                    prompt_tokens=n,
                    response_tokens=1,
                    estimated_cost=Decimal("0.000125"),
                    execution_time_ms=n,
                )
            )
        async with db.get_session() as session:
            await TradeRepository(session).close_trade(trade_id, exit_.close, exit_.timestamp)
            if n % 10 == 0:
                positions = PositionRepository(session)
                opened = await positions.update_position(
                    Position(
                        symbol=entry.symbol,
                        exchange="binance",
                        side="short",
                        entry_price=entry.close,
                        quantity=QTY,
                        margin=entry.close * QTY,
                    )
                )
                await positions.mark_to_market(entry.symbol, exit_.close)
                assert opened.id is not None
                await positions.close_position(opened.id, exit_price=exit_.close)
        async with db.get_session() as session:
            latest = await OHLCVRepository(session).get_latest(entry.symbol, "1m", limit=1)
            assert latest[0].timestamp == exit_.timestamp


async def soak(db: DatabaseManager, iterations: int) -> None:
    await asyncio.gather(*(worker(db, task, iterations) for task in range(TASKS)))

    candles_per_task = (iterations - 1) * STEP + WINDOW
    expected_closes = sum(price(task, m) for task in range(TASKS) for m in range(candles_per_task))
    expected_pnl = sum(
        (price(task, n * STEP + WINDOW - 1) - price(task, n * STEP)) * QTY
        for task in range(TASKS)
        for n in range(iterations)
    )
    async with db.get_session() as session:
        candles = (await session.execute(select(func.count(), dec_sum(OHLCVModel.close)))).one()
        trades = (
            await session.execute(
                select(func.count(), dec_sum(TradeModel.realized_pnl)).where(
                    TradeModel.action == "close"
                )
            )
        ).one()
        events = await session.scalar(select(func.count()).select_from(SystemEventModel))
        llm = (
            await session.execute(select(func.count(), dec_sum(LLMAnalysisLogModel.estimated_cost)))
        ).one()
        positions = (
            await session.execute(
                select(func.count(), func.count().filter(PositionModel.status == "open"))
            )
        ).one()
    operations = TASKS * iterations
    assert tuple(candles) == (TASKS * candles_per_task, expected_closes)
    assert tuple(trades) == (operations, expected_pnl)
    assert events == operations
    assert tuple(llm) == (operations, Decimal("0.000125") * operations)
    assert tuple(positions) == (TASKS * ((iterations + 9) // 10), 0)


async def test_soak_short(db: DatabaseManager) -> None:
    await soak(db, iterations=30)


@pytest.mark.soak
async def test_soak_long(db: DatabaseManager) -> None:
    await soak(db, iterations=2_000)
