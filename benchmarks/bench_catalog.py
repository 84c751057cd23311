"""The candle catalog (issue 15): coverage, gaps and the ingest cost of keeping it, both backends.

    .venv/bin/python -m benchmarks.bench_catalog [--repetitions 3] [--quick] [--backends ...]

- **Coverage** of 500 series of 40,000 candles (20M, a few holes each): ``get_coverage()`` reads
  the catalog; ``scan_coverage()`` (the old path) is timed once for contrast. The candles are
  seeded around the library, so the catalog is rebuilt first, timed (what migration 0010's
  backfill costs at 20M), and checked by ``verify()`` and against the generator.
- **Gaps** of one series of 10M candles (about 1,000 holes): ``get_gaps`` against the raw driver
  loading the series' open times and looping in Python; ``scan_gaps`` once for contrast.
- **Ingest**: ``insert_many`` and ``upsert_many`` of 100k candles exactly as bench_writes times
  them, and the catalog upkeep inside them (``lock_series`` + ``refresh`` of the same span,
  timed alone on the same table state), with where its time goes, statement by statement.

The big tables are built once and kept (``catalog_data``); the ingest runs in a new database.
Rewrites the "Candle catalog" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from tests.support.pg_cluster import PostgresServer

from benchmarks import bench_writes
from benchmarks.bench_series import naive_gaps
from benchmarks.candles import (
    BATCH_SYMBOL,
    EXCHANGE,
    STEP,
    T0,
    TIMEFRAME,
    GappedSeries,
    bars,
    gapped_series,
    last_open_time,
    native_rows,
)
from benchmarks.catalog_data import CACHE, Table, cached_server, opened
from benchmarks.config import DEFAULT_OUTPUT, Sizes
from benchmarks.databases import Database, postgres_database, sqlite_database
from benchmarks.machine import load_average
from benchmarks.results import BackendResults, Figure
from benchmarks.standalone import log
from benchmarks.timing import Case, Samples, compare, repeat
from iftb.data.storage import CandleCatalogRepository, OHLCVRepository
from iftb.data.storage.repositories.market.catalog_upkeep import lock_series, refresh, spans_of

NAIVE = "load-and-loop"
GAPS_START = datetime(2010, 1, 1, tzinfo=UTC)
"""The 10M-minute series runs to 2029: PostgreSQL's partitions reach 11 years ahead at most."""


@dataclass(frozen=True)
class Scale:
    """How much each part stores and repeats."""

    series: int = 500
    per_series: int = 40_000
    holes_every: int = 10_000
    """About one hole (1 to 30 candles) per this many stored candles of a coverage series."""
    gap_rows: int = 10_000_000
    gap_holes_every: int = 10_000
    batch: int = 100_000
    repetitions: int = 3
    coverage_calls: int = 30
    """get_coverage calls timed (one each, in its own unit of work)."""


QUICK = Scale(series=20, per_series=2_000, holes_every=500, gap_rows=50_000, gap_holes_every=500,
              batch=5_000, repetitions=2, coverage_calls=5)  # fmt: skip


@dataclass
class Measured:
    """Everything measured on one backend, or why it was skipped."""

    backend: str
    version: str = ""
    skipped: str | None = None
    series: int = 0
    coverage_rows: int = 0
    coverage: Samples | None = None
    """Seconds per get_coverage() call."""
    scan_coverage: float = 0.0
    rebuild: float = 0.0
    verify: float = 0.0
    gap_rows: int = 0
    gaps: int = 0
    get_gaps: Samples | None = None
    """Seconds per get_gaps call."""
    naive: Samples | None = None
    scan_gaps: float = 0.0
    writes: list[Figure] = field(default_factory=list)
    upkeep: Samples | None = None
    """Seconds of lock_series + refresh for the span of one batch."""
    statements: list[tuple[str, float]] = field(default_factory=list)
    """(statement, median seconds) of one refresh, in order."""
    checks: list[str] = field(default_factory=list)
    seconds: float = 0.0


def coverage_table(scale: Scale) -> tuple[Table, GappedSeries]:
    """``scale.series`` series with the same holes; their template series."""
    template = gapped_series("BENCH_CAT000", scale.per_series, holes_every=scale.holes_every)
    symbols = tuple(symbol(number) for number in range(scale.series))
    name = f"iftb_catalog_cov_{scale.series}x{scale.per_series}_{scale.holes_every}"
    return Table(name, symbols, template.span, template.holes, catalog=False), template


def gaps_table(scale: Scale) -> tuple[Table, GappedSeries]:
    series = gapped_series("BENCH_CATGAPS", scale.gap_rows, holes_every=scale.gap_holes_every)
    name = f"iftb_catalog_gaps_{scale.gap_rows}_{scale.gap_holes_every}_{GAPS_START.year}"
    table = Table(name, (series.symbol,), series.span, series.holes, True, GAPS_START)
    return table, series


def symbol(number: int) -> str:
    return f"BENCH_CAT{number:03d}"


# --- coverage -------------------------------------------------------------------------------


async def measure_coverage(db: Database, scale: Scale, out: Measured) -> None:
    """Rebuild the catalog from nothing (timed once), verify it, then time get_coverage."""
    _, template = coverage_table(scale)
    await db.raw.execute("DELETE FROM candle_gaps")
    await db.raw.execute("DELETE FROM candle_series")
    started = time.perf_counter()
    async with db.manager.get_session() as session:
        listed = await CandleCatalogRepository(session).rebuild()
    out.rebuild = time.perf_counter() - started
    started = time.perf_counter()
    async with db.manager.get_session(read_only=True) as session:
        differences = await CandleCatalogRepository(session).verify()
    out.verify = time.perf_counter() - started
    if differences or listed != scale.series:
        raise RuntimeError(f"catalog: {listed} series rebuilt, differences {differences[:3]}")
    out.checks.append(
        f"coverage table: verify() found no difference after the rebuild ({listed} series)"
    )
    found: dict[str, Any] = {}

    async def coverage() -> None:
        async with db.manager.get_session(read_only=True) as session:
            found["catalog"] = await OHLCVRepository(session).get_coverage()

    await coverage()  # warm-up: connections, statement caches
    out.coverage = await repeat(scale.coverage_calls, Case(coverage))
    started = time.perf_counter()
    async with db.manager.get_session(read_only=True) as session:
        scanned = await OHLCVRepository(session).scan_coverage()
    out.scan_coverage = time.perf_counter() - started
    entries = found["catalog"]
    expected = [(symbol(n), T0, T0 + STEP * (template.span - 1), template.stored, template.span)
                for n in range(scale.series)]  # fmt: skip
    got = [(e.symbol, e.first, e.last, e.count, e.expected) for e in entries]
    if got != expected or scanned != entries:
        raise RuntimeError("get_coverage disagrees with the generator or with scan_coverage")
    out.series, out.coverage_rows = len(entries), sum(e.count for e in entries)
    out.checks.append(
        f"coverage table: get_coverage() equals scan_coverage() and the generator for all "
        f"{len(entries)} series ({out.coverage_rows:,} candles)"
    )


# --- gaps -----------------------------------------------------------------------------------

_GAP_CALLS = 10
"""get_gaps calls per timed repetition (one takes milliseconds)."""


async def measure_gaps(db: Database, scale: Scale, out: Measured) -> None:
    """get_gaps (catalog) against load-and-loop with the raw driver; scan_gaps once."""
    _, series = gaps_table(scale)
    found: dict[str, list[tuple[datetime, datetime, int]]] = {}

    async def library() -> None:
        for _ in range(_GAP_CALLS):
            async with db.manager.get_session(read_only=True) as session:
                gaps = await OHLCVRepository(session).get_gaps(series.symbol, TIMEFRAME, EXCHANGE)
        found["catalog"] = [(gap.start, gap.end, gap.missing) for gap in gaps]

    async def loop() -> None:
        found["naive"] = naive_gaps(await db.raw.fetch_timestamps(series.symbol))

    await library()
    calls, naive = await compare(scale.repetitions, Case(library), Case(loop))
    out.get_gaps = Samples(tuple(seconds / _GAP_CALLS for seconds in calls.seconds))
    out.naive = naive
    started = time.perf_counter()
    async with db.manager.get_session(read_only=True) as session:
        scanned = await OHLCVRepository(session).scan_gaps(series.symbol, TIMEFRAME, EXCHANGE)
    out.scan_gaps = time.perf_counter() - started
    scan = [(gap.start, gap.end, gap.missing) for gap in scanned]
    missing = sum(gap[2] for gap in found["catalog"])
    if not (found["catalog"] == found["naive"] == scan) or (
        len(scan),
        missing,
    ) != (series.hole_runs, len(series.holes)):
        counts = [len(found["catalog"]), len(found["naive"]), len(scan), series.hole_runs]
        raise RuntimeError(f"gaps disagree (catalog, naive, scan, generated): {counts}")
    out.gap_rows, out.gaps = series.stored, len(scan)
    out.checks.append(
        f"gaps table: get_gaps, load-and-loop and scan_gaps found the same {len(scan):,} gaps "
        f"({missing:,} missing candles), as generated"
    )


# --- ingest ---------------------------------------------------------------------------------


async def measure_ingest(db: Database, scale: Scale, out: Measured) -> None:
    """bench_writes' figures, then the catalog upkeep of the same batch timed alone."""
    results = BackendResults(db.backend)
    sizes = Sizes(rows=scale.batch, repetitions=scale.repetitions)
    await bench_writes.run(db, sizes, results)
    out.writes = results.figures
    out.checks += [f"ingest: {check}" for check in results.checks]
    records = bars(list(native_rows(BATCH_SYMBOL, 0, scale.batch)))
    spans = spans_of(records)
    await db.raw.insert(db.raw.candle_rows(native_rows(BATCH_SYMBOL, 0, scale.batch)))
    async with db.manager.get_session() as session:  # the catalog as insert_many leaves it
        await CandleCatalogRepository(session).rebuild()
    timings: list[float] = []
    statements: dict[int, list[tuple[str, float]]] = {}

    async def upkeep() -> None:
        async with db.manager.get_session() as session:
            connection = await session.connection()
            with StatementClock(db) as clock:
                started = time.perf_counter()
                await lock_series(connection, spans)
                await refresh(connection, spans)
                timings.append(time.perf_counter() - started)
            statements[len(statements)] = clock

    for _ in range(max(scale.repetitions, 5)):
        await upkeep()
    out.upkeep = Samples(tuple(timings))
    runs = list(statements.values())
    out.statements = [
        (text, sorted(run[index][1] for run in runs)[len(runs) // 2])
        for index, (text, _) in enumerate(runs[0])
    ]
    await db.raw.clear_candles()


class StatementClock:
    """Times every statement the library sends while open (SQLAlchemy cursor events)."""

    def __init__(self, db: Database) -> None:
        self._engine = db.manager.engine.sync_engine
        self._open: list[float] = []
        self.timed: list[tuple[str, float]] = []

    def __enter__(self) -> list[tuple[str, float]]:
        event.listen(self._engine, "before_cursor_execute", self._before)
        event.listen(self._engine, "after_cursor_execute", self._after)
        return self.timed

    def __exit__(self, *exc: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)
        event.remove(self._engine, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        self._open.append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.timed.append((_kind(statement), time.perf_counter() - self._open.pop()))


def _kind(statement: str) -> str:
    """A short name for a refresh statement."""
    text = " ".join(statement.split())
    if "advisory" in text:
        return "advisory lock"
    if text.startswith("SELECT (SELECT max"):
        return "bounds (four seeks + the catalog row)"
    if text.startswith("DELETE FROM candle_gaps"):
        return "delete stale gaps"
    if text.startswith("SELECT count"):
        return "count of the span (index-only)"
    if text.startswith(("UPDATE candle_series", "INSERT INTO candle_series")):
        return "write the series row"
    if text.startswith("INSERT INTO candle_gaps"):
        return "insert gaps"
    return text[:40]


# --- running --------------------------------------------------------------------------------


async def _backend(backend: str, server: PostgresServer | None, scale: Scale) -> Measured:
    out = Measured(backend)
    began = time.perf_counter()
    cov, _ = coverage_table(scale)
    gap, _ = gaps_table(scale)
    log(f"{backend}: coverage table ({scale.series} × {scale.per_series:,}) ...")
    async with opened(backend, server, cov) as db:
        out.version = db.server_version
        await measure_coverage(db, scale, out)
    log(f"{backend}: gaps table ({scale.gap_rows:,}) ...")
    async with opened(backend, server, gap) as db:
        await measure_gaps(db, scale, out)
    log(f"{backend}: ingest ({scale.batch:,} candles) ...")
    if backend == "sqlite":
        async with sqlite_database() as fresh:
            await measure_ingest(fresh, scale, out)
    else:
        assert server is not None
        async with postgres_database(server, last_open_time(scale.batch)) as fresh:
            await measure_ingest(fresh, scale, out)
    out.seconds = time.perf_counter() - began
    log(f"{backend}: done in {out.seconds:.0f} s")
    return out


def measure_all(scale: Scale, backends: Sequence[str]) -> tuple[list[Measured], str]:
    results: list[Measured] = []
    origin = ""
    if "sqlite" in backends:
        results.append(asyncio.run(_backend("sqlite", None, scale)))
    if "postgresql" in backends:
        with cached_server() as (server, origin):
            if server is None:
                results.append(Measured("postgresql", skipped=origin))
            else:
                results.append(asyncio.run(_backend("postgresql", server, scale)))
    return results, origin


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.catalog_report import write

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_catalog",
        description="The candle catalog: coverage, gaps and ingest cost, both backends; "
        "rewrites the Candle catalog section of the report.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--repetitions", type=int, help="timed repetitions per figure")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--output", type=Path, help=f"report to rewrite (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if not backends or set(backends) - {"sqlite", "postgresql"}:
        parser.error("--backends: expected a subset of sqlite,postgresql")
    scale = QUICK if args.quick else Scale()
    if args.repetitions:
        scale = replace(scale, repetitions=args.repetitions)
    given = sys.argv[1:] if argv is None else list(argv)
    started, load_at_start = datetime.now(UTC), load_average()
    log(f"tables are kept in {CACHE} (built on the first run)")
    results, origin = measure_all(scale, backends)
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    write(results, scale, origin, given, started, output, quick=args.quick,
          load_at_start=load_at_start)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
