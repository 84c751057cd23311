"""The performance targets, in one place: what each library path must reach against its raw
driver (rows/s ratio), and the absolute ones."""

from __future__ import annotations

RATIO_TARGETS: dict[tuple[str, str], float] = {
    ("postgresql", "insert_many"): 0.6,
    ("postgresql", "upsert_many"): 0.35,
    ("sqlite", "insert_many"): 0.5,
    ("sqlite", "upsert_many"): 0.5,
    ("postgresql", "get_range"): 0.5,
    ("sqlite", "get_range"): 0.5,
}
"""Minimum library rows/s over raw-driver rows/s, per (backend, operation)."""

GAPS_SPEEDUP = 100.0
"""get_gaps must be this many times faster than loading every timestamp and looping (issue 15:
it reads the gap index, O(gaps), where the loop is O(candles))."""

COVERAGE_SERIES = 500
COVERAGE_ROWS = 20_000_000
COVERAGE_SECONDS = 0.020
"""get_coverage of every series must take less than this on PostgreSQL with this many series
holding this many candles (issue 15: it reads the catalog, O(series)). Only bench_catalog
stores that much; the main run's few series leave the target undecided."""

CATALOG_WRITES_BEFORE: dict[tuple[str, str], float] = {
    ("postgresql", "insert_many"): 0.92,
    ("postgresql", "upsert_many"): 0.93,
    ("sqlite", "insert_many"): 0.51,
    ("sqlite", "upsert_many"): 0.48,
}
"""The write ratios of docs/performance.md before the catalog existed (commit 17bd2fc)."""
CATALOG_WRITES_LOSS = 0.10
"""Keeping the catalog may cost the write ratios at most this fraction of those (issue 15)."""
CATALOG_UPKEEP_SHARE = 0.08
"""Above this share of a write's time, the catalog upkeep is worth profiling."""

STREAM_RSS_MB = 150.0
"""Peak RSS growth allowed while stream_range reads its candles."""


def write_baseline(backend: str, operation: str) -> str:
    """How the raw side of a write is called in the report."""
    if backend == "sqlite":
        return "raw executemany"
    return "raw COPY" if operation == "insert_many" else "raw COPY + merge"


def read_baseline(backend: str) -> str:
    return "raw fetchall" if backend == "sqlite" else "raw fetch"
