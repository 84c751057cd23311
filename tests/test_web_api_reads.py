"""The repository reads the dashboard's API added: a page of a scope's trades with their total
(``TradeRepository.get_page``) and LLM spend per day and model (``get_daily_usage``), each equal
to an independent computation, on both backends."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    LLMAnalysisLog,
    LLMAnalysisLogModel,
    LLMAnalysisLogRepository,
    Scope,
    Trade,
    TradeRepository,
    ValidationError,
)
from tests.factories import T0, make_trade


async def _journal(session: AsyncSession) -> list[Trade]:
    rng = random.Random(3)
    mine = TradeRepository(session)
    stored = []
    for number in range(40):
        trade = make_trade(
            symbol=rng.choice(["BTCUSDT", "ETHUSDT"]),
            exchange=rng.choice(["binance", "bybit"]),
            entry_time=T0 + timedelta(hours=rng.randint(0, 30)),  # ties on purpose
        )
        await mine.insert(trade)
        stored.append(await mine.get_by_trade_id(trade.trade_id))
        if number % 5 == 0:  # another scope's trade: never listed
            await TradeRepository(session, Scope("other")).insert(make_trade())
    return [trade for trade in stored if trade is not None]


@pytest.mark.parametrize(
    "window",
    [
        {},
        {"symbol": "ETHUSDT"},
        {"exchange": "bybit", "symbol": "BTCUSDT"},
        {"start": T0 + timedelta(hours=10), "end": T0 + timedelta(hours=20)},
        {"symbol": "BTCUSDT", "start": T0 + timedelta(hours=5)},
        {"symbol": "XRPUSDT"},
    ],
)
async def test_a_page_of_trades_equals_an_independent_listing(
    session: AsyncSession, window: dict[str, object]
) -> None:
    stored = await _journal(session)
    start = window.get("start")
    end = window.get("end")
    matching = [
        trade
        for trade in stored
        if trade.symbol == window.get("symbol", trade.symbol)
        and trade.exchange == window.get("exchange", trade.exchange)
        and (start is None or trade.entry_time >= start)  # type: ignore[operator]
        and (end is None or trade.entry_time < end)  # type: ignore[operator]
    ]
    matching.sort(key=lambda trade: (trade.entry_time, trade.id), reverse=True)
    repo = TradeRepository(session)
    for limit, offset in ((5, 0), (5, 5), (7, 3), (1000, 0), (10, 1000)):
        page = await repo.get_page(limit=limit, offset=offset, **window)  # type: ignore[arg-type]
        assert page.total == len(matching)
        assert [t.id for t in page.trades] == [t.id for t in matching[offset : offset + limit]]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"offset": -1}, "offset"),
        ({"limit": 0}, "limit"),
        ({"start": datetime(2024, 1, 1)}, "start"),
        ({"end": "2024-01-01"}, "end"),
    ],
)
async def test_a_bad_page_is_refused_naming_the_argument(
    session: AsyncSession, arguments: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}:"):
        await TradeRepository(session).get_page(**arguments)  # type: ignore[arg-type]


async def test_daily_llm_usage_equals_an_independent_computation(session: AsyncSession) -> None:
    rng = random.Random(5)
    repo = LLMAnalysisLogRepository(session)
    now = datetime.now(UTC)
    expected: dict[tuple[date, str | None], list[LLMAnalysisLog]] = defaultdict(list)
    for number in range(120):
        entry = LLMAnalysisLog(
            analysis_type="signal",
            model_name=rng.choice(["gpt-x", "claude-y", None]),
            prompt_tokens=rng.randint(10, 5000),
            response_tokens=rng.randint(1, 900),
            total_tokens=rng.randint(10, 6000),
            estimated_cost=Decimal(rng.randint(0, 10**6)) / 10**6,
        )
        entry_id = await repo.log(entry)
        age = timedelta(days=45) if number % 10 == 0 else timedelta(hours=rng.randint(0, 24 * 6))
        logged = now - age
        await session.execute(
            update(LLMAnalysisLogModel)
            .where(LLMAnalysisLogModel.id == entry_id)
            .values(created_at=logged)
        )
        if number % 10:
            expected[(logged.date(), entry.model_name)].append(entry)
        if number % 7 == 0:  # another scope's call: never counted
            await LLMAnalysisLogRepository(session, Scope("other")).log(entry)

    usage = await repo.get_daily_usage(days=7)
    key = [(day.day, day.model) for day in usage]
    assert key == sorted(expected, key=lambda k: (k[0], "" if k[1] is None else k[1]))
    for day in usage:
        calls = expected[(day.day, day.model)]
        assert day.calls == len(calls)
        assert day.total_tokens == sum(call.total_tokens or 0 for call in calls)
        assert day.estimated_cost == sum(
            (c.estimated_cost or Decimal(0) for c in calls), Decimal(0)
        )
    assert await repo.get_daily_usage(days=1) != usage
