"""SystemEventRepository: the operators' event log (issue #5)."""

from __future__ import annotations

from typing import Any

from iftb.data.storage.records import SystemEvent
from iftb.data.storage.repositories.base import Repository


class SystemEventRepository(Repository):
    """Warnings, errors and restarts from every module."""

    async def log_event(
        self,
        event_type: str,
        severity: str,
        message: str,
        details: Any = None,
        symbol: str | None = None,
        exchange: str | None = None,
        trade_id: str | None = None,
        position_id: int | None = None,
        stack_trace: str | None = None,
    ) -> int:
        raise NotImplementedError

    async def get_recent_events(
        self, severity: str | None = None, limit: int = 100
    ) -> list[SystemEvent]:
        raise NotImplementedError
