"""LLMAnalysisLogRepository: the audit log of every LLM call, and its cost and latency report.

Latency percentiles use the nearest-rank definition: the p95 of n latencies is the value at
rank ⌈0.95·n⌉ in ascending order — an actual observed latency, computed the same on both
backends with window functions (no interpolation, which SQLite lacks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, select

from iftb.data.storage.enums import LLMCallStatus
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.models import LLMAnalysisLogModel
from iftb.data.storage.records import LLMAnalysisLog, LLMUsage
from iftb.data.storage.repositories.base import all_records, checked_limit
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.sql_functions import dec_sum, epoch_seconds
from iftb.data.storage.validation import choice_rule, days_ago
from iftb.utils.redaction import redact

_COLUMNS = LLMAnalysisLogModel.__table__.columns
_GROUPS = {
    "model_name": LLMAnalysisLogModel.model_name,
    "analysis_type": LLMAnalysisLogModel.analysis_type,
}
_status = choice_rule("status", LLMCallStatus)
_DAY_SECONDS = 86_400
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class LLMDailyUsage:
    """LLM calls of one model on one UTC day: how many, their tokens and their exact cost."""

    day: date
    model: str | None
    calls: int
    total_tokens: int
    estimated_cost: Decimal


class LLMAnalysisLogRepository(ScopedRepository):
    """Every LLM call: tokens, cost, latency and outcome."""

    async def log(self, entry: LLMAnalysisLog) -> int:
        """Record one call; returns its id. Credentials in its error message (an echoed
        Authorization header, a URL with ``api_key=…``) are masked as in a log line; the prompt
        and the response are kept exactly as sent and received."""
        if entry.error_message is not None:
            entry = replace(entry, error_message=redact(entry.error_message))
        return await self._insert_record(entry, LLMAnalysisLogModel)

    async def get_recent(
        self,
        limit: int = 100,
        analysis_type: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
    ) -> list[LLMAnalysisLog]:
        """The latest calls, newest first, optionally filtered."""
        statement = select(*_COLUMNS).where(self._in_scope(LLMAnalysisLogModel))
        if analysis_type is not None:
            statement = statement.where(LLMAnalysisLogModel.analysis_type == analysis_type)
        if symbol is not None:
            statement = statement.where(LLMAnalysisLogModel.symbol == symbol)
        if status is not None:
            statement = statement.where(LLMAnalysisLogModel.status == _status(status).value)
        statement = statement.order_by(
            LLMAnalysisLogModel.created_at.desc(), LLMAnalysisLogModel.id.desc()
        ).limit(checked_limit(limit))
        return all_records(LLMAnalysisLog, await self._execute(statement))

    async def get_usage_summary(
        self, days: int = 30, group_by: Literal["model_name", "analysis_type"] = "model_name"
    ) -> list[LLMUsage]:
        """Per model (or analysis type) over the last ``days`` days: calls by outcome, tokens,
        exact total cost, average and p95 latency — all computed in SQL."""
        if group_by not in _GROUPS:
            raise ValidationError(
                f"group_by: {group_by!r} is not one of model_name, analysis_type", field="group_by"
            )
        window = self._in_scope(LLMAnalysisLogModel) & (
            LLMAnalysisLogModel.created_at >= days_ago(days)
        )
        group = _GROUPS[group_by]
        totals = {row.group: row for row in await self._execute(_totals(group, window))}
        p95 = {row.group: row.latency for row in await self._execute(_p95(group, window))}
        return [
            LLMUsage(
                group=name,
                calls=row.calls,
                successes=row.successes,
                errors=row.errors,
                timeouts=row.timeouts,
                prompt_tokens=row.prompt_tokens or 0,
                response_tokens=row.response_tokens or 0,
                total_tokens=row.total_tokens or 0,
                estimated_cost=row.cost or Decimal(0),
                avg_latency_ms=_average(row.latency_sum, row.timed_calls),
                p95_latency_ms=p95.get(name),
            )
            for name, row in totals.items()
        ]

    async def get_daily_usage(self, days: int = 30) -> list[LLMDailyUsage]:
        """Per UTC day and model over the last ``days`` days, oldest first (calls without a model
        first in their day): calls, tokens and exact total cost, summed in SQL (what a spend
        chart draws)."""
        log = LLMAnalysisLogModel
        calls = (
            select(
                (epoch_seconds(log.created_at) // _DAY_SECONDS).label("day"),
                log.model_name.label("model"),
                log.total_tokens,
                log.estimated_cost,
            )
            .where(self._in_scope(log), log.created_at >= days_ago(days))
            .subquery("calls")
        )
        statement = (
            select(
                calls.c.day,
                calls.c.model,
                func.count().label("calls"),
                func.sum(calls.c.total_tokens).label("tokens"),
                dec_sum(calls.c.estimated_cost).label("cost"),
            )
            .group_by(calls.c.day, calls.c.model)
            .order_by(calls.c.day, calls.c.model.asc().nulls_first())
        )
        return [
            LLMDailyUsage(
                day=_EPOCH + timedelta(days=int(row.day)),
                model=row.model,
                calls=row.calls,
                total_tokens=row.tokens or 0,
                estimated_cost=row.cost or Decimal(0),
            )
            for row in await self._execute(statement)
        ]

    async def purge(self, older_than: datetime) -> int:
        """Delete calls logged before ``older_than``, in every scope (retention is the
        operator's, not a bot's); returns how many went."""
        return await self._purge(LLMAnalysisLogModel, older_than)


def _totals(group: Any, window: ColumnElement[bool]) -> Any:
    log = LLMAnalysisLogModel
    by_status = {
        status.value: func.count(case((log.status == status.value, 1))) for status in LLMCallStatus
    }
    return (
        select(
            group.label("group"),
            func.count().label("calls"),
            by_status["success"].label("successes"),
            by_status["error"].label("errors"),
            by_status["timeout"].label("timeouts"),
            func.sum(log.prompt_tokens).label("prompt_tokens"),
            func.sum(log.response_tokens).label("response_tokens"),
            func.sum(log.total_tokens).label("total_tokens"),
            dec_sum(log.estimated_cost).label("cost"),
            func.sum(log.execution_time_ms).label("latency_sum"),
            func.count(log.execution_time_ms).label("timed_calls"),
        )
        .where(window)
        .group_by(group)
        .order_by(group)
    )


def _p95(group: Any, window: ColumnElement[bool]) -> Any:
    """The nearest-rank 95th percentile latency per group: rank ⌈0.95·n⌉ = (95·n + 99) / 100."""
    latency = LLMAnalysisLogModel.execution_time_ms
    ranked = (
        select(
            group.label("group"),
            latency.label("latency"),
            func.row_number().over(partition_by=group, order_by=latency).label("rank"),
            func.count().over(partition_by=group).label("n"),
        )
        .where(window, latency.is_not(None))
        .subquery("ranked")
    )
    return select(ranked.c.group, ranked.c.latency).where(
        ranked.c.rank == (ranked.c.n * 95 + 99) // 100
    )


def _average(total: int | None, count: int) -> Decimal | None:
    if not count or total is None:
        return None
    return (Decimal(total) / count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
