"""Audit trail: ``events``, ``llm-usage`` and ``purge``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal, Protocol

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.commands.common import (
    DEFAULT_SCOPE_TEXT,
    DatabaseUrl,
    ScopeOption,
    console,
    fail,
    folding_table,
    money,
    open_database,
    parse_age,
    parse_moment,
    reading,
    resolve_scope,
    run,
    when,
)
from iftb.data.storage import (
    LLMAnalysisLogRepository,
    LLMUsage,
    OHLCVRepository,
    SystemEvent,
    SystemEventRepository,
)

app = typer.Typer()


class _Purgeable(Protocol):
    async def purge(self, older_than: datetime) -> int: ...


_GROUPS: dict[str, Literal["model_name", "analysis_type"]] = {
    "model": "model_name",
    "type": "analysis_type",
}


@app.command()
def events(
    severity: Annotated[str | None, typer.Option(help="Only this severity.")] = None,
    since: Annotated[str | None, typer.Option(help="Since this time (ISO 8601).")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """A scope's latest system events, newest first."""

    async def work() -> list[SystemEvent]:
        moment = parse_moment("--since", since) if since else None
        async with reading(database_url) as session:
            events = SystemEventRepository(session, await resolve_scope(session, scope))
            return await events.get_recent_events(severity, limit, event_type, moment)

    found = run(work)
    table = folding_table("time", "severity", "type", "symbol", "message", title="system events")
    for event in found:
        table.add_row(
            when(event.created_at),
            event.severity,
            event.event_type,
            event.symbol or "",
            event.message,
        )
    console.print(table if found else "no events")


@app.command("llm-usage")
def llm_usage(
    days: Annotated[int, typer.Option(help="Calls of the last DAYS days.")] = 30,
    by: Annotated[str, typer.Option(help="Group by model or type.")] = "model",
    scope: ScopeOption = DEFAULT_SCOPE_TEXT,
    database_url: DatabaseUrl = None,
) -> None:
    """A scope's LLM calls, tokens, exact cost and latency (average, p95) per model or type."""
    if by not in _GROUPS:
        fail(f"--by: {by!r} is not one of model, type")

    async def work() -> list[LLMUsage]:
        async with reading(database_url) as session:
            calls = LLMAnalysisLogRepository(session, await resolve_scope(session, scope))
            return await calls.get_usage_summary(days, _GROUPS[by])

    usage = run(work)
    console.print(
        usage_table(usage, by, f"LLM usage, last {days} days") if usage else "no LLM calls logged"
    )


def usage_table(usage: list[LLMUsage], by: str, title: str) -> Table:
    table = folding_table(
        by, "calls", "ok", "errors", "timeouts", "tokens", "cost", "avg ms", "p95 ms", title=title
    )
    for group in usage:
        table.add_row(
            group.group or "—",
            f"{group.calls:,}",
            f"{group.successes:,}",
            f"{group.errors:,}",
            f"{group.timeouts:,}",
            f"{group.total_tokens:,}",
            money(group.estimated_cost),
            money(round(group.avg_latency_ms)) if group.avg_latency_ms is not None else "—",
            money(group.p95_latency_ms),
        )
    return table


@app.command()
def purge(
    events_older_than: Annotated[
        str | None, typer.Option(help="Delete system events older than this age, e.g. 90d.")
    ] = None,
    llm_older_than: Annotated[
        str | None, typer.Option(help="Delete LLM log entries older than this age, e.g. 365d.")
    ] = None,
    candles_older_than: Annotated[
        str | None,
        typer.Option(help="Delete candles of every series older than this age, e.g. 1825d."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Retention: delete old system events, LLM log entries and candles (on PostgreSQL,
    whole candle partitions are dropped)."""
    ages: dict[str, tuple[str | None, Callable[[AsyncSession], _Purgeable], str]] = {
        "--events-older-than": (events_older_than, SystemEventRepository, "system events"),
        "--llm-older-than": (llm_older_than, LLMAnalysisLogRepository, "LLM log entries"),
        "--candles-older-than": (candles_older_than, OHLCVRepository, "candles"),
    }
    if not any(age for age, _, _ in ages.values()):
        fail(f"nothing to purge: give {', '.join(ages)}")

    async def work() -> list[str]:
        now = datetime.now(UTC)
        cuts = [
            (now - parse_age(option, age), repo, what)
            for option, (age, repo, what) in ages.items()
            if age
        ]
        async with open_database(database_url) as manager, manager.get_session() as session:
            return [f"{await repo(session).purge(cut):,} {what}" for cut, repo, what in cuts]

    console.print("purged " + ", ".join(run(work)))
