"""get_gaps and get_coverage on a long series with holes, against the naive approach.

The naive approach is what one writes without the catalog: load every open time of the series
into Python (with the raw driver, so it is the fastest version of itself) and walk it. Both sides
must find the same gaps and counts as the generator put in, or the run stops.

The series is seeded around the library (raw COPY / executemany), so the candle catalog that
get_gaps and get_coverage read is rebuilt afterwards, outside any timer, as a user does after
such a load (``rebuild_catalog``).
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks.candles import (
    EXCHANGE,
    GAP_SYMBOL,
    OWN_SYMBOLS,
    STEP,
    TIMEFRAME,
    GappedSeries,
    gapped_series,
)
from benchmarks.config import Sizes
from benchmarks.databases import Database
from benchmarks.results import BackendResults, Figure, Target, ratio_evidence
from benchmarks.targets import COVERAGE_ROWS, COVERAGE_SECONDS, COVERAGE_SERIES, GAPS_SPEEDUP
from benchmarks.timing import Case, compare
from iftb.data.storage import CandleCatalogRepository, OHLCVRepository
from iftb.data.storage.market_models import CandleGapModel, CandleSeriesModel
from iftb.data.storage.repositories.market.candle_sql import SeriesKey
from iftb.data.storage.repositories.market.catalog_upkeep import lock_series, refresh

SYMBOL = GAP_SYMBOL
NAIVE = "load-and-loop"

Gap = tuple[datetime, datetime, int]
Coverage = tuple[datetime, datetime, int, int]
"""(first, last, stored, expected)."""


def naive_gaps(stamps: list[datetime]) -> list[Gap]:
    """(first missing, last missing, how many) of each hole between consecutive open times."""
    gaps = []
    for earlier, later in pairwise(stamps):
        if later - earlier > STEP:
            gaps.append((earlier + STEP, later - STEP, (later - earlier) // STEP - 1))
    return gaps


def naive_coverage(stamps: list[datetime]) -> Coverage:
    """(first, last, stored, expected) of a non-empty series."""
    first, last = stamps[0], stamps[-1]
    return first, last, len(stamps), (last - first) // STEP + 1


async def seed(db: Database, sizes: Sizes) -> GappedSeries:
    """Store the gapped series (it stays for the later phases)."""
    series = gapped_series(SYMBOL, sizes.gap_rows)
    await db.raw.load(series.rows())
    await rebuild_catalog(db)
    return series


async def rebuild_catalog(db: Database) -> None:
    """Rebuild the candle catalog after candles were written around the library (untimed).

    On an existing database (``--database-url``) only the benchmark's own series are mended,
    the way ``CandleCatalogRepository.rebuild`` mends every series: the rest is not touched.
    """
    async with db.manager.get_session() as session:
        if db.own_rows_only:
            await _mend_own_series(session)
        else:
            await CandleCatalogRepository(session).rebuild()


async def _mend_own_series(session: AsyncSession) -> None:
    candles = OHLCVRepository(session)
    connection = await session.connection()
    listed = [entry for name in OWN_SYMBOLS for entry in await candles.get_inventory(name)]
    stored = [entry for name in OWN_SYMBOLS for entry in await candles.scan_coverage(name)]
    spans = {
        SeriesKey(entry.symbol, entry.exchange, entry.timeframe, entry.price_type): (
            entry.first,
            entry.last,
        )
        for entry in stored
    }
    await lock_series(
        connection,
        spans.keys() | {SeriesKey(e.symbol, e.exchange, e.timeframe, e.price_type) for e in listed},
    )
    for model in (CandleGapModel, CandleSeriesModel):
        await connection.execute(delete(model).where(model.symbol.in_(OWN_SYMBOLS)))
    await refresh(connection, spans)


async def run(db: Database, sizes: Sizes, out: BackendResults, series: GappedSeries) -> None:
    """Time get_gaps and get_coverage of the series against load-and-loop."""
    gaps: dict[str, list[Gap]] = {}
    coverage: dict[str, Coverage] = {}

    async def library_gaps() -> None:
        async with db.manager.get_session() as session:
            found = await OHLCVRepository(session).get_gaps(SYMBOL, TIMEFRAME, EXCHANGE)
        gaps["library"] = [(gap.start, gap.end, gap.missing) for gap in found]

    async def loop_gaps() -> None:
        gaps["naive"] = naive_gaps(await db.raw.fetch_timestamps(SYMBOL))

    async def library_coverage() -> None:
        async with db.manager.get_session() as session:
            (found,) = await OHLCVRepository(session).get_coverage(SYMBOL, TIMEFRAME, EXCHANGE)
        coverage["library"] = (found.first, found.last, found.count, found.expected)

    async def loop_coverage() -> None:
        coverage["naive"] = naive_coverage(await db.raw.fetch_timestamps(SYMBOL))

    gaps_library, gaps_naive = await compare(sizes.repetitions, Case(library_gaps), Case(loop_gaps))
    coverage_library, coverage_naive = await compare(
        sizes.repetitions, Case(library_coverage), Case(loop_coverage)
    )
    out.checks.append(_agreement(series, gaps, coverage))
    speedup = gaps_naive.median / gaps_library.median
    gaps_target = Target(
        f"≥ {GAPS_SPEEDUP:g}× {NAIVE}",
        speedup >= GAPS_SPEEDUP,
        ratio_evidence(speedup, GAPS_SPEEDUP),
    )
    needed = gaps_naive.median / GAPS_SPEEDUP
    out.figures += [
        Figure(
            "get_gaps",
            series.stored,
            gaps_library,
            gaps_naive,
            NAIVE,
            gaps_target,
            note=f"{series.hole_runs:,} gaps in the series; load-and-loop takes "
            f"{gaps_naive.median:.2f} s, so {GAPS_SPEEDUP:g}× means get_gaps under "
            f"{needed * 1000:.1f} ms",
        ),
        Figure(
            "get_coverage (one series)",
            series.stored,
            coverage_library,
            coverage_naive,
            NAIVE,
        ),
    ]


def coverage_target(backend: str, series: int, rows: int, seconds: float) -> Target | None:
    """The target of get_coverage of every series: PostgreSQL only, and decided only when
    measured at its scale (``COVERAGE_SERIES`` series, ``COVERAGE_ROWS`` candles)."""
    if backend != "postgresql":
        return None
    text = (
        f"< {COVERAGE_SECONDS * 1000:g} ms, {COVERAGE_SERIES} series at "
        f"{COVERAGE_ROWS // 1_000_000}M rows"
    )
    measured = f"{seconds * 1000:.1f} ms for {series:,} series, {rows:,} rows"
    if series < COVERAGE_SERIES or rows < COVERAGE_ROWS:
        return Target(text, None, f"{measured}; that scale is bench_catalog's")
    return Target(text, seconds < COVERAGE_SECONDS, measured)


def _agreement(
    series: GappedSeries, gaps: dict[str, list[Gap]], coverage: dict[str, Coverage]
) -> str:
    """Both sides found what the generator put in; otherwise the figures mean nothing."""
    missing = sum(gap[2] for gap in gaps["library"])
    gaps_agree = gaps["library"] == gaps["naive"] and (len(gaps["library"]), missing) == (
        series.hole_runs,
        len(series.holes),
    )
    coverage_agree = coverage["library"] == coverage["naive"] and coverage["library"][2:] == (
        series.stored,
        series.span,
    )
    if not (gaps_agree and coverage_agree):
        raise RuntimeError(
            f"gaps/coverage disagree: library {len(gaps['library'])} gaps, naive "
            f"{len(gaps['naive'])}, generated {series.hole_runs}; coverage {coverage}"
        )
    return (
        f"get_gaps and get_coverage agree with load-and-loop and with the generator "
        f"({series.hole_runs:,} gaps, {len(series.holes):,} missing candles)"
    )
