"""SystemEventRepository on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    SystemEvent,
    SystemEventModel,
    SystemEventRepository,
    ValidationError,
)


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(SystemEventModel)) or 0)


async def test_log_event_stores_every_field(session: AsyncSession) -> None:
    repo = SystemEventRepository(session)
    event_id = await repo.log_event(
        "order_rejected",
        "error",
        "exchange said no; retrying",
        details={"code": -2019, "reason": "margin insufficient", "nested": [1, {"a": None}]},
        symbol="BTCUSDT",
        exchange="binance",
        trade_id="t-1",
        position_id=42,
        stack_trace="Traceback ...",
    )
    [event] = await repo.get_recent_events()
    assert event.id == event_id
    assert (event.event_type, event.severity, event.symbol, event.position_id) == (
        "order_rejected",
        "error",
        "BTCUSDT",
        42,
    )
    assert event.details == {
        "code": -2019,
        "reason": "margin insufficient",
        "nested": [1, {"a": None}],
    }
    assert event.created_at is not None and event.created_at.tzinfo is UTC


async def test_events_are_stored_with_their_secrets_masked(session: AsyncSession) -> None:
    repo = SystemEventRepository(session)
    await repo.log_event(
        "reconnect",
        "warning",
        "reconnecting to postgresql://bot:s1-pw@db/iftb",
        details={"dsn": "host=db password=s2-pw", "auth": {"X-API-KEY": "s3-key"}},
        stack_trace="Traceback ...\nConnectionError: Authorization: Bearer s4-tok",
    )
    await repo.log_events(
        [SystemEvent("probe", "error", "login", details=[{"client_secret": "s5-sec"}])]
    )
    probe, reconnect = await repo.get_recent_events()
    assert reconnect.message == "reconnecting to postgresql://bot:***@db/iftb"
    assert reconnect.details == {"dsn": "host=db password=***", "auth": "***"}
    assert reconnect.stack_trace == "Traceback ...\nConnectionError: Authorization: ***"
    assert probe.details == [{"client_secret": "***"}]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"severity": "fatal"}, "severity"),
        ({"details": {"when": datetime.now(UTC)}}, "details"),
        ({"details": {"x": float("nan")}}, "details"),
        ({"event_type": "e" * 51}, "event_type"),
        ({"message": "nul\x00byte"}, "message"),
    ],
)
async def test_invalid_events_are_refused_with_nothing_written(
    session: AsyncSession, arguments: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {"event_type": "restart", "severity": "info", "message": "hi"}
    with pytest.raises(ValidationError, match=f"^{field}: "):
        await SystemEventRepository(session).log_event(**(values | arguments))  # type: ignore[arg-type]
    assert await count(session) == 0


async def test_recent_events_filter_and_order(session: AsyncSession) -> None:
    repo = SystemEventRepository(session)
    for number, (kind, severity) in enumerate(
        [("restart", "info"), ("fill", "warning"), ("fill", "error"), ("restart", "warning")]
    ):
        await repo.log_event(kind, severity, f"event {number}")
    assert [e.message for e in await repo.get_recent_events()] == [
        f"event {n}" for n in (3, 2, 1, 0)
    ]
    assert [e.message for e in await repo.get_recent_events(severity="warning")] == [
        "event 3",
        "event 1",
    ]
    assert [e.message for e in await repo.get_recent_events(event_type="fill", limit=1)] == [
        "event 2"
    ]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await repo.get_recent_events(since=future) == []


async def test_count_by_severity_lists_every_severity(session: AsyncSession) -> None:
    repo = SystemEventRepository(session)
    for severity in ("info", "info", "critical"):
        await repo.log_event("x", severity, "m")
    assert await repo.count_by_severity() == {
        "debug": 0,
        "info": 2,
        "warning": 0,
        "error": 0,
        "critical": 1,
    }


async def test_purge_removes_only_older_events(session: AsyncSession) -> None:
    repo = SystemEventRepository(session)
    await repo.log_event("old", "info", "m")
    await asyncio.sleep(0.01)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await repo.log_event("new", "info", "m")
    assert await repo.purge(cutoff) == 1
    assert [e.event_type for e in await repo.get_recent_events()] == ["new"]
