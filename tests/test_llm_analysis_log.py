"""LLMAnalysisLogRepository on both backends: the audit log and its usage summary in SQL."""

from __future__ import annotations

import asyncio
import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    LLMAnalysisLog,
    LLMAnalysisLogModel,
    LLMAnalysisLogRepository,
    LLMUsage,
    ValidationError,
)


async def test_a_megabyte_prompt_and_response_round_trip(session: AsyncSession) -> None:
    prompt = "Analyse BTC. " + "ä€😀'\";--" * 110_000
    response = {"signal": "long", "confidence": 0.73, "reasons": ["x" * 1000] * 50}
    repo = LLMAnalysisLogRepository(session)
    entry_id = await repo.log(
        LLMAnalysisLog(
            analysis_type="signal",
            prompt_text=prompt,
            response_text=prompt[::-1],
            response_json=response,
            estimated_cost=Decimal("0.123456"),
            temperature=Decimal("0.70"),
        )
    )
    [stored] = await repo.get_recent()
    assert stored.id == entry_id
    assert len(prompt.encode()) > 1_000_000
    assert (stored.prompt_text, stored.response_text, stored.response_json) == (
        prompt,
        prompt[::-1],
        response,
    )
    assert stored.estimated_cost == Decimal("0.123456")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"status": "fine"}, "status"),
        ({"estimated_cost": Decimal("0.0000001")}, "estimated_cost"),
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"response_json": {"x": {1, 2}}}, "response_json"),
    ],
)
async def test_invalid_entries_are_refused(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: "):
        LLMAnalysisLog(analysis_type="signal", **fields)  # type: ignore[arg-type]


async def test_recent_calls_filter(session: AsyncSession) -> None:
    repo = LLMAnalysisLogRepository(session)
    for kind, symbol, status in [
        ("signal", "BTC", "success"),
        ("risk", "ETH", "error"),
        ("signal", "ETH", "timeout"),
    ]:
        await repo.log(LLMAnalysisLog(analysis_type=kind, symbol=symbol, status=status))
    assert [e.status for e in await repo.get_recent()] == ["timeout", "error", "success"]
    assert [e.symbol for e in await repo.get_recent(analysis_type="signal")] == ["ETH", "BTC"]
    assert [e.analysis_type for e in await repo.get_recent(symbol="ETH", status="error")] == [
        "risk"
    ]


async def test_usage_summary_equals_an_independent_computation(session: AsyncSession) -> None:
    rng = random.Random(7)
    repo = LLMAnalysisLogRepository(session)
    recent: list[LLMAnalysisLog] = []
    for number in range(300):
        entry = LLMAnalysisLog(
            analysis_type=rng.choice(["signal", "risk", "news"]),
            model_name=rng.choice(["gpt-x", "claude-y", None]),
            prompt_tokens=rng.randint(10, 5000),
            response_tokens=rng.randint(1, 900),
            total_tokens=None if number % 17 == 0 else rng.randint(10, 6000),
            estimated_cost=Decimal(rng.randint(0, 10**6)) / 10**6,
            status=rng.choice(["success"] * 8 + ["error", "timeout"]),
            execution_time_ms=None if number % 13 == 0 else rng.randint(50, 30_000),
        )
        entry_id = await repo.log(entry)
        if number % 10 == 0:  # logged long ago: outside the window
            old = datetime.now(UTC) - timedelta(days=45)
            await session.execute(
                update(LLMAnalysisLogModel)
                .where(LLMAnalysisLogModel.id == entry_id)
                .values(created_at=old)
            )
        else:
            recent.append(entry)

    for group_by in ("model_name", "analysis_type"):
        summary = await repo.get_usage_summary(days=30, group_by=group_by)  # type: ignore[arg-type]
        assert {u.group: u for u in summary} == expected_usage(recent, group_by)


def expected_usage(entries: list[LLMAnalysisLog], group_by: str) -> dict[str | None, LLMUsage]:
    groups: dict[str | None, list[LLMAnalysisLog]] = defaultdict(list)
    for entry in entries:
        groups[getattr(entry, group_by)].append(entry)
    usage = {}
    for name, members in groups.items():
        latencies = sorted(e.execution_time_ms for e in members if e.execution_time_ms is not None)
        usage[name] = LLMUsage(
            group=name,
            calls=len(members),
            successes=sum(e.status == "success" for e in members),
            errors=sum(e.status == "error" for e in members),
            timeouts=sum(e.status == "timeout" for e in members),
            prompt_tokens=sum(e.prompt_tokens or 0 for e in members),
            response_tokens=sum(e.response_tokens or 0 for e in members),
            total_tokens=sum(e.total_tokens or 0 for e in members),
            estimated_cost=sum((e.estimated_cost or Decimal(0) for e in members), Decimal(0)),
            avg_latency_ms=(Decimal(sum(latencies)) / len(latencies)).quantize(Decimal("0.01")),
            p95_latency_ms=latencies[math.ceil(0.95 * len(latencies)) - 1],
        )
    return usage


async def test_usage_summary_rejects_unknown_groupings(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="group_by"):
        await LLMAnalysisLogRepository(session).get_usage_summary(group_by="colour")  # type: ignore[arg-type]


async def test_purge_removes_only_older_calls(session: AsyncSession) -> None:
    repo = LLMAnalysisLogRepository(session)
    await repo.log(LLMAnalysisLog(analysis_type="old"))
    await asyncio.sleep(0.01)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await repo.log(LLMAnalysisLog(analysis_type="new"))
    assert await repo.purge(cutoff) == 1
    assert [e.analysis_type for e in await repo.get_recent()] == ["new"]


async def test_total_tokens_defaults_to_prompt_plus_response(session: AsyncSession) -> None:
    repo = LLMAnalysisLogRepository(session)
    await repo.log(LLMAnalysisLog(analysis_type="sentiment", prompt_tokens=812, response_tokens=95))
    [entry] = await repo.get_recent()
    assert entry.total_tokens == 907


async def test_credentials_in_an_error_message_are_masked_and_the_prompt_is_kept(
    session: AsyncSession,
) -> None:
    repo = LLMAnalysisLogRepository(session)
    await repo.log(
        LLMAnalysisLog(
            analysis_type="signal",
            status="error",
            prompt_text="api_key=not-a-secret-here, just the prompt",
            error_message="401 from https://llm.example/v1?api_key=sk-live-123 "
            "(Authorization: Bearer sk-live-123456)",
        )
    )
    [stored] = await repo.get_recent()
    assert stored.error_message is not None and "sk-live" not in stored.error_message
    assert stored.prompt_text == "api_key=not-a-secret-here, just the prompt"
