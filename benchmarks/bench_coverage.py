"""get_coverage over every stored series: the query a dashboard runs, timed on the whole table.

With ``--large`` (PostgreSQL only) the table is refilled with 10M candles first (ten series of
1M, seeded by COPY, then the catalog rebuilt); otherwise the figure is for what the earlier
phases left behind. The target (500 series at 20M candles) is decided by bench_catalog, which
stores that much. Against an existing database every series it holds
is covered (and timed), but only the benchmark's own are checked against what was stored.
"""

from __future__ import annotations

from benchmarks.bench_series import coverage_target, rebuild_catalog
from benchmarks.candles import OWN_SYMBOLS, native_rows
from benchmarks.config import Sizes
from benchmarks.databases import Database, refresh_statistics
from benchmarks.results import BackendResults, Figure
from benchmarks.timing import Case, repeat
from iftb.data.storage import OHLCVRepository

LARGE_SERIES_ROWS = 1_000_000
"""Candles per series of the large table."""


async def run(db: Database, sizes: Sizes, out: BackendResults, stored: int) -> None:
    """Time ``get_coverage()`` of all series over the ``stored`` candles in the table."""
    covered: dict[str, int] = {}

    async def coverage() -> None:
        async with db.manager.get_session() as session:
            series = await OHLCVRepository(session).get_coverage()
        covered["series"] = len(series)
        covered["all"] = sum(found.count for found in series)
        covered["rows"] = sum(
            found.count for found in series if found.symbol in OWN_SYMBOLS or not db.own_rows_only
        )

    await coverage()
    samples = await repeat(sizes.repetitions, Case(coverage))
    if covered["rows"] != stored:
        raise RuntimeError(f"get_coverage counted {covered['rows']:,} candles, stored {stored:,}")
    out.figures.append(
        Figure(
            f"get_coverage (all series, {covered['all']:,} rows)",
            covered["all"],
            samples,
            None,
            target=coverage_target(db.backend, covered["series"], covered["all"], samples.median),
        )
    )


async def seed_large(db: Database, sizes: Sizes) -> int:
    """Replace the candles with ``sizes.coverage_rows`` of them in 1M-candle series."""
    await db.raw.clear_candles()
    stored = 0
    for number in range(0, sizes.coverage_rows, LARGE_SERIES_ROWS):
        count = min(LARGE_SERIES_ROWS, sizes.coverage_rows - number)
        stored += await db.raw.load(
            native_rows(f"BENCH_LARGE{number // LARGE_SERIES_ROWS:03d}", 0, count)
        )
    await refresh_statistics(db)
    await rebuild_catalog(db)
    return stored
