"""SystemEventRepository: the operators' log of warnings, errors and restarts.

Every event is redacted on its way in (``iftb.utils.redaction``): whoever writes it — the logging
bridge or a direct call — the stored message, details and stack trace carry no credential.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select

from iftb.data.storage.enums import Severity
from iftb.data.storage.errors import ValidationError, translated_errors
from iftb.data.storage.models import SystemEventModel
from iftb.data.storage.records import SystemEvent
from iftb.data.storage.repositories.base import all_records, checked_limit
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.scopes import SCOPE_COLUMNS
from iftb.data.storage.validation import aware_utc, choice_rule
from iftb.utils.redaction import redact_data

_COLUMNS = SystemEventModel.__table__.columns
_severity = choice_rule("severity", Severity)


class SystemEventRepository(ScopedRepository):
    """A scope's system events, newest first."""

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
        """Record an event (secrets masked); returns its id. An invalid field is a
        ValidationError; nothing is written."""
        event = SystemEvent(
            event_type=event_type,
            severity=severity,
            message=message,
            details=details,
            symbol=symbol,
            exchange=exchange,
            trade_id=trade_id,
            position_id=position_id,
            stack_trace=stack_trace,
        )
        return await self._insert_record(_redacted(event), SystemEventModel)

    async def log_events(self, events: Sequence[SystemEvent]) -> int:
        """Record a batch of events (secrets masked) in one executemany (the logging bridge
        writes this way).

        An event's ``created_at`` is kept when set (the bridge passes the log record's time);
        otherwise it is now. One invalid event rejects the batch, naming its index.
        """
        if not events:
            return 0
        for index, event in enumerate(events):
            try:
                event.validate()
            except ValidationError as exc:
                raise exc.at_index(index) from exc.__cause__
        now = datetime.now(UTC)
        rows = [
            self._claim(event, _event_values(_redacted(event)))
            | {
                "created_at": now
                if event.created_at is None
                else aware_utc("created_at", event.created_at)
            }
            for event in events
        ]
        with translated_errors():
            async with self._session.begin_nested():
                await self._session.execute(insert(SystemEventModel), rows)
        return len(rows)

    async def get_recent_events(
        self,
        severity: str | None = None,
        limit: int = 100,
        event_type: str | None = None,
        since: datetime | None = None,
    ) -> list[SystemEvent]:
        """The latest events, newest first, optionally of one severity, type, or since a time."""
        statement = select(*_COLUMNS).where(self._in_scope(SystemEventModel))
        if severity is not None:
            statement = statement.where(SystemEventModel.severity == _severity(severity).value)
        if event_type is not None:
            statement = statement.where(SystemEventModel.event_type == event_type)
        if since is not None:
            statement = statement.where(SystemEventModel.created_at >= aware_utc("since", since))
        statement = statement.order_by(
            SystemEventModel.created_at.desc(), SystemEventModel.id.desc()
        ).limit(checked_limit(limit))
        return all_records(SystemEvent, await self._execute(statement))

    async def count_by_severity(self, since: datetime | None = None) -> dict[str, int]:
        """How many events of each severity (all five present, zero when none)."""
        statement = (
            select(SystemEventModel.severity, func.count().label("events"))
            .where(self._in_scope(SystemEventModel))
            .group_by(SystemEventModel.severity)
        )
        if since is not None:
            statement = statement.where(SystemEventModel.created_at >= aware_utc("since", since))
        counts = {severity.value: 0 for severity in Severity}
        for row in await self._execute(statement):
            counts[row.severity] = row.events
        return counts

    async def purge(self, older_than: datetime) -> int:
        """Delete events created before ``older_than``, in every scope (retention is the
        operator's, not a bot's); returns how many went."""
        return await self._purge(SystemEventModel, older_than)


def _redacted(event: SystemEvent) -> SystemEvent:
    """The event with credentials masked in its free-text fields and secret-named details."""
    return replace(
        event,
        message=redact_data(event.message),
        details=redact_data(event.details),
        stack_trace=redact_data(event.stack_trace),
    )


def _event_values(event: SystemEvent) -> dict[str, Any]:
    return {
        name: getattr(event, name)
        for name in _COLUMNS.keys()  # noqa: SIM118 - a column collection, not a dict
        if name not in ("id", "created_at", *SCOPE_COLUMNS)
    }
