"""The "Candle catalog" section of docs/performance.md, from bench_catalog's figures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.machine import describe, load_average
from benchmarks.standalone import TITLES, samples_text, splice
from benchmarks.targets import (
    CATALOG_UPKEEP_SHARE,
    CATALOG_WRITES_BEFORE,
    CATALOG_WRITES_LOSS,
    COVERAGE_SECONDS,
    GAPS_SPEEDUP,
)
from benchmarks.timing import Samples

if TYPE_CHECKING:
    from benchmarks.bench_catalog import Measured, Scale

HEADING = "## Candle catalog"


def _met(value: bool) -> str:
    return "**yes**" if value else "**NO**"


def _ms(samples: Samples) -> str:
    return f"{samples.median * 1000:.2f} [{samples.low * 1000:.2f} – {samples.high * 1000:.2f}]"


def section(results: Sequence[Measured], scale: Scale, provenance: str) -> list[str]:
    """The section's lines."""
    done = [result for result in results if not result.skipped]
    lines = [
        HEADING,
        "",
        provenance,
        "",
        "The catalog (migration 0010: `candle_series`, `candle_gaps`) is kept by every candle "
        "write; `get_coverage`, `get_inventory`, `get_gaps` and `get_last_timestamp` read it. "
        "The scans it replaced stay as `scan_coverage` and `scan_gaps`. The big tables are "
        "generated around the library by the database itself (`INSERT ... SELECT` over "
        "`generate_series` or a recursive CTE) once and kept between runs; every call below "
        "runs in its own unit of work, as a user's would.",
        "",
        f"**Coverage of every series**: {scale.series} series of {scale.per_series:,} candles "
        "(1m, a few holes each). `get_coverage()` milliseconds are the median [fastest – "
        f"slowest] of {scale.coverage_calls} calls; `scan_coverage()` (the path get_coverage "
        f"had before) once. Target on PostgreSQL: < {COVERAGE_SECONDS * 1000:g} ms.",
        "",
        "| Backend | Series | Candles | get_coverage ms | scan_coverage s | Speed-up | Met? |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in done:
        assert r.coverage is not None
        met = _met(r.coverage.median < COVERAGE_SECONDS) if r.backend == "postgresql" else "—"
        lines.append(
            f"| {TITLES[r.backend]} | {r.series:,} | {r.coverage_rows:,} | {_ms(r.coverage)} | "
            f"{r.scan_coverage:.3f} | {r.scan_coverage / r.coverage.median:,.0f}× | {met} |"
        )
    lines += [
        "",
        "**Rebuilding the catalog** of that table from empty (`CandleCatalogRepository.rebuild()`"
        ", once: what migration 0010's backfill costs at this size), then `verify()` (every "
        "series' span, counts and runs recomputed by the scans and compared), once.",
        "",
        "| Backend | Candles | rebuild s | verify s |",
        "|---|--:|--:|--:|",
        *(
            f"| {TITLES[r.backend]} | {r.coverage_rows:,} | {r.rebuild:.1f} | {r.verify:.1f} |"
            for r in done
        ),
        "",
        f"**Gaps of one series** of {scale.gap_rows:,} candles: `get_gaps` (the catalog's gap "
        "index; seconds per call, median of repetitions of 10 calls) against load-and-loop "
        "(the raw driver fetches every open time of the series, asyncpg `fetch` or sqlite3 "
        "`fetchall` with the text parsed, and Python walks them), in turns, "
        f"{scale.repetitions} repetitions; `scan_gaps` (the window-function scan get_gaps ran "
        f"before) once. Target: ≥ {GAPS_SPEEDUP:g}× load-and-loop on both backends.",
        "",
        "| Backend | Candles | Gaps | get_gaps ms | load-and-loop s | Ratio | scan_gaps s | Met? |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in done:
        assert r.get_gaps is not None
        assert r.naive is not None
        ratio = r.naive.median / r.get_gaps.median
        lines.append(
            f"| {TITLES[r.backend]} | {r.gap_rows:,} | {r.gaps:,} | {_ms(r.get_gaps)} | "
            f"{samples_text(r.naive)} | {ratio:,.0f}× | {r.scan_gaps:.3f} | "
            f"{_met(ratio >= GAPS_SPEEDUP)} |"
        )
    lines += _ingest(done, scale)
    for r in results:
        if r.skipped:
            lines.append(f"\n{TITLES[r.backend]} was skipped: {r.skipped}.")
    checks = [f"- {TITLES[r.backend]}: {check}" for r in done for check in r.checks]
    if checks:
        lines += ["", "Sanity checks (outside the timers):", "", *checks]
    return [*lines, ""]


def _ingest(done: Sequence[Measured], scale: Scale) -> list[str]:
    loss = f"{CATALOG_WRITES_LOSS:.0%}"
    lines = [
        "",
        f"**Ingest cost of keeping the catalog**: `insert_many` and `upsert_many` of "
        f"{scale.batch:,} candles against the raw driver, exactly as in the main run "
        "(bench_writes: records built before the clock, the same table state every repetition,"
        f" {scale.repetitions} repetitions, median), into a new database. 'Before' is the "
        f"ratio docs/performance.md held before the catalog; the target allows a {loss} loss "
        "of it. 'Upkeep' is the catalog's part of the write: `lock_series` + `refresh` of the "
        "batch's span timed alone on the table the write leaves (median of "
        f"{max(scale.repetitions, 5)}), as a share of the library's write time.",
        "",
        "| Backend | Operation | Library s | Raw s | Ratio | Before | Allowed | Met? | Upkeep ms "
        "| Upkeep share |",
        "|---|---|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for r in done:
        assert r.upkeep is not None
        for figure in r.writes:
            before = CATALOG_WRITES_BEFORE.get((r.backend, figure.operation))
            if before is None or figure.baseline is None or figure.ratio is None:
                continue
            allowed = before * (1 - CATALOG_WRITES_LOSS)
            share = r.upkeep.median / figure.library.median
            lines.append(
                f"| {TITLES[r.backend]} | {figure.operation} | {samples_text(figure.library)} | "
                f"{samples_text(figure.baseline)} ({figure.baseline_name}) | "
                f"{figure.ratio:.2f}× | {before:.2f}× | ≥ {allowed:.2f}× | "
                f"{_met(figure.ratio >= allowed)} | {r.upkeep.median * 1000:.1f} | {share:.1%} |"
            )
    lines += ["", "Where one `refresh` (and its lock) spends its time, statement by statement "
              "(median over the upkeep runs; SQLAlchemy cursor events, so driver time "
              "included):", ""]  # fmt: skip
    for r in done:
        parts = ", ".join(f"{text} {seconds * 1000:.2f} ms" for text, seconds in r.statements)
        lines.append(f"- {TITLES[r.backend]}: {parts}")
    shares = [
        (r, f)
        for r in done
        for f in r.writes
        if r.upkeep is not None and r.upkeep.median / f.library.median > CATALOG_UPKEEP_SHARE
    ]
    if shares:
        lines.append(
            f"- The upkeep passes {CATALOG_UPKEEP_SHARE:.0%} of a write on: "
            + ", ".join(f"{TITLES[r.backend]} {f.operation}" for r, f in shares)
        )
    return lines


def write(
    results: Sequence[Measured],
    scale: Scale,
    origin: str,
    given: Sequence[str],
    started: datetime,
    output: Path | None,
    *,
    quick: bool,
    load_at_start: str,
) -> None:
    """Print the section and (unless ``output`` is None) splice it into ``output``."""
    machine = describe()
    versions = ", ".join(f"{TITLES[r.backend]} {r.version}" for r in results if not r.skipped)
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    command = " ".join([".venv/bin/python", "-m", "benchmarks.bench_catalog", *given])
    provenance = (
        f"Measured by itself with `{command}` on {started:%Y-%m-%d %H:%M} UTC ({minutes:.1f} "
        f"min{', a --quick smoke run: the figures mean nothing' if quick else ''}), not in the "
        f"run the rest of this file comes from. Machine: {machine['CPU']}, {machine['RAM']} "
        f"RAM, {machine['Python']}, SQLAlchemy {machine['SQLAlchemy']}, asyncpg "
        f"{machine['asyncpg']}; {versions}{f' ({origin})' if origin else ''}; load average "
        f"{load_at_start} at start, {load_average()} at end (the machine is shared: other work "
        f"skews every figure); library commit {machine['Library commit']}."
    )
    lines = section(results, scale, provenance)
    print("\n".join(lines))
    if output is not None:
        document = output.read_text(encoding="utf-8") if output.exists() else "# Performance\n"
        output.write_text(splice(document, lines, HEADING), encoding="utf-8")
        print(f"{HEADING[3:]} section written to {output} at {time.strftime('%H:%M')}")
