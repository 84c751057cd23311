"""A scope's audit trail: what its LLM calls cost, and its recent warnings and errors."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from iftb.data.storage import SystemEvent
from iftb.data.storage.enums import Severity
from iftb.web.api.models import EventOut, LLMDayOut, LLMSpendOut, LLMUsageOut
from iftb.web.deps import Database, Limit, RequestScope, reading

router = APIRouter(tags=["audit"])
MAX_DAYS = 3650
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="The window: the last N days")]
Level = Literal["debug", "info", "warning", "error", "critical"]
_LEVELS: tuple[str, ...] = tuple(severity.value for severity in Severity)


@router.get("/llm-usage", response_model=LLMSpendOut)
async def llm_usage(manager: Database, scope: RequestScope, days: Days = 30) -> LLMSpendOut:
    """LLM calls of the last ``days`` days per model (``get_usage_summary``) and per UTC day
    and model (``get_daily_usage``): calls, tokens and exact cost."""
    async with reading(manager, scope) as journal:
        by_model = await journal.llm_calls.get_usage_summary(days)
        by_day = await journal.llm_calls.get_daily_usage(days)
    return LLMSpendOut(
        days=days,
        by_model=[
            LLMUsageOut.model_validate({**_fields(usage), "model": usage.group})
            for usage in by_model
        ],
        by_day=[LLMDayOut.model_validate(day) for day in by_day],
    )


@router.get("/events", response_model=list[EventOut])
async def events(
    manager: Database,
    scope: RequestScope,
    limit: Limit = 100,
    min_level: Level = "warning",
) -> list[EventOut]:
    """The latest ``limit`` events of ``min_level`` or worse, newest first."""
    levels = _LEVELS[_LEVELS.index(min_level) :]
    found: list[SystemEvent] = []
    async with reading(manager, scope) as journal:
        for level in levels:  # one indexed read per severity, merged
            found += await journal.events.get_recent_events(severity=level, limit=limit)
    found.sort(key=lambda event: (event.created_at, event.id), reverse=True)
    return [EventOut.model_validate(event) for event in found[:limit]]


def _fields(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in LLMUsageOut.model_fields if name != "model"}
