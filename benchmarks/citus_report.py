"""The Citus comparison as Markdown: machine and versions, the workload, one table of figures
(plain PostgreSQL, Citus, and their ratio), the spread of the repetitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from benchmarks.citus_work import Measured, Workload
from benchmarks.timing import Samples


@dataclass
class Outcome:
    """Everything the report needs."""

    command: str
    work: Workload
    shard_count: int
    machine: dict[str, str]
    started: datetime
    versions: dict[str, str] = field(default_factory=dict)
    figures: list[Measured] = field(default_factory=list)
    seconds: float = 0.0
    distribute_seconds: float = 0.0


def render(outcome: Outcome) -> str:
    work = outcome.work
    facts = {**outcome.machine, **outcome.versions}
    lines = [
        "# Plain PostgreSQL against Citus",
        "",
        f"Written by `{outcome.command}` on {outcome.started:%Y-%m-%d %H:%M} UTC (the whole "
        f"run took {outcome.seconds / 60:.1f} min). All four PostgreSQL servers (the plain one, "
        "the Citus coordinator and its two workers) ran on this one machine, sharing its cores, "
        "with fsync off.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value.replace('|', '/')} |" for name, value in facts.items()),
        "",
        f"Workload: {work.symbols} series × {work.hours:,} hourly candles from 2025-01-01 "
        f"({work.rows:,} candles, a few holes per series), written in batches of {work.batch:,} "
        f"candles (one session each) into months created beforehand; Citus distributed over "
        f"{outcome.shard_count} shards (distributing the empty database took "
        f"{outcome.distribute_seconds:.1f} s). Medians of {work.repetitions} repetitions, the two "
        f"databases taking turns; get_range and get_gaps are {work.calls} calls per repetition.",
        "",
        *table(outcome),
        "",
        "Citus / plain is Citus's figure over plain PostgreSQL's in the figure's own unit: below "
        "1× on rows/s, or above 1× on ms, Citus is slower.",
        "",
        "Seconds per repetition, median [fastest – slowest]:",
        "",
        "| Figure | plain PostgreSQL | Citus |",
        "|---|--:|--:|",
        *(f"| {m.figure} | {_spread(m.plain)} | {_spread(m.citus)} |" for m in outcome.figures),
    ]
    return "\n".join(lines) + "\n"


def table(outcome: Outcome) -> list[str]:
    """The figures: plain PostgreSQL, Citus, and the ratio."""
    citus = f"Citus (coordinator + 2 workers, {outcome.shard_count} shards)"
    lines = [
        f"| Figure | Unit | plain PostgreSQL | {citus} | Citus / plain |",
        "|---|---|--:|--:|--:|",
    ]
    for m in outcome.figures:
        lines.append(
            f"| {m.figure} | {m.unit} | {_number(m.value(m.plain))} | "
            f"{_number(m.value(m.citus))} | {m.ratio:.2f}× |"
        )
    return lines


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _spread(samples: Samples) -> str:
    return f"{samples.median:.3f} [{samples.low:.3f} – {samples.high:.3f}]"
