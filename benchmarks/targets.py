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

GAPS_SPEEDUP = 10.0
"""get_gaps must be this many times faster than loading every timestamp and looping."""

COVERAGE_ROWS = 10_000_000
COVERAGE_SECONDS = 1.0
"""get_coverage over this many rows must take less than this (PostgreSQL)."""

STREAM_RSS_MB = 150.0
"""Peak RSS growth allowed while stream_range reads its candles."""


def write_baseline(backend: str, operation: str) -> str:
    """How the raw side of a write is called in the report."""
    if backend == "sqlite":
        return "raw executemany"
    return "raw COPY" if operation == "insert_many" else "raw COPY + merge"


def read_baseline(backend: str) -> str:
    return "raw fetchall" if backend == "sqlite" else "raw fetch"
