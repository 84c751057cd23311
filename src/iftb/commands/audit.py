"""Audit trail: ``events``, ``llm-usage`` and ``purge``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import typer
from rich.table import Table

from iftb.commands.common import (
    DatabaseUrl,
    console,
    fail,
    folding_table,
    money,
    open_database,
    parse_age,
    parse_moment,
    run,
    when,
)
from iftb.data.storage import (
    LLMAnalysisLogRepository,
    LLMUsage,
    SystemEvent,
    SystemEventRepository,
)

app = typer.Typer()

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
    database_url: DatabaseUrl = None,
) -> None:
    """The latest system events, newest first."""

    async def work() -> list[SystemEvent]:
        moment = parse_moment("--since", since) if since else None
        async with open_database(database_url) as manager, manager.get_session() as session:
            return await SystemEventRepository(session).get_recent_events(
                severity, limit, event_type, moment
            )

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
    database_url: DatabaseUrl = None,
) -> None:
    """LLM calls, tokens, exact cost and latency (average, p95) per model or analysis type."""
    if by not in _GROUPS:
        fail(f"--by: {by!r} is not one of model, type")

    async def work() -> list[LLMUsage]:
        async with open_database(database_url) as manager, manager.get_session() as session:
            return await LLMAnalysisLogRepository(session).get_usage_summary(days, _GROUPS[by])

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
    database_url: DatabaseUrl = None,
) -> None:
    """Retention: delete old system events and LLM log entries."""
    if events_older_than is None and llm_older_than is None:
        fail("nothing to purge: give --events-older-than and/or --llm-older-than")

    async def work() -> tuple[int, int]:
        now = datetime.now(UTC)
        events_cut = (
            now - parse_age("--events-older-than", events_older_than) if events_older_than else None
        )
        llm_cut = now - parse_age("--llm-older-than", llm_older_than) if llm_older_than else None
        async with open_database(database_url) as manager, manager.get_session() as session:
            gone_events = (
                await SystemEventRepository(session).purge(events_cut) if events_cut else 0
            )
            gone_llm = await LLMAnalysisLogRepository(session).purge(llm_cut) if llm_cut else 0
        return gone_events, gone_llm

    gone_events, gone_llm = run(work)
    console.print(f"purged {gone_events:,} system events and {gone_llm:,} LLM log entries")
