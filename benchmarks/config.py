"""What one run measures: sizes, repetitions, backends and where the report goes.

The defaults are sized so that a full run of both backends stays under about 15 minutes on a
2-core machine; ``--quick`` shrinks everything for a smoke run of the harness itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

BACKENDS = ("sqlite", "postgresql")
DEFAULT_OUTPUT = Path("docs/performance.md")
LARGE_COVERAGE_ROWS = 10_000_000


@dataclass(frozen=True)
class Sizes:
    """Row counts of each workload."""

    rows: int = 100_000
    """Batch size of insert_many, upsert_many and get_range."""
    repetitions: int = 5
    """Timed repetitions per figure; the median is reported."""
    gap_rows: int = 1_000_000
    """Stored candles of the series with holes (get_gaps, get_coverage)."""
    stream_rows: int = 2_000_000
    """Candles read by stream_range (peak RSS growth)."""
    stream_repetitions: int = 3
    """Repetitions of each streaming run (each one a fresh subprocess)."""
    orm_rows: int = 10_000
    """Batch size of the naive ORM paths (scaled to rows/s)."""
    trades: int = 100_000
    """Closed trades behind get_statistics and rollup."""
    scope_trades: int = 100_000
    """Trades of one backtest's record_trades, and the smaller journal of the scoped statistics."""
    scope_trades_large: int = 1_000_000
    """The larger journal of the scoped statistics (20 scopes)."""
    ledger_live_fills: int = 3_000
    """Fills recorded one at a time (each order and fill in its own unit of work)."""
    ledger_history_trades: int = 330
    """Trades per series (20 symbols × long/short) of the bulk history: about 100,700 fills."""
    coverage_rows: int = 0
    """Candles seeded on PostgreSQL for get_coverage at scale (``--large``: 10M); 0 skips it."""


QUICK = Sizes(
    rows=5_000,
    repetitions=2,
    gap_rows=20_000,
    stream_rows=20_000,
    stream_repetitions=1,
    orm_rows=500,
    trades=2_000,
    scope_trades=2_000,
    scope_trades_large=20_000,
    ledger_live_fills=200,
    ledger_history_trades=5,
)


@dataclass(frozen=True)
class Config:
    """One benchmark run."""

    sizes: Sizes
    backends: tuple[str, ...]
    output: Path | None
    """Where the Markdown report goes; None prints it only (the ``--quick`` default)."""
    command: str
    """The command line as given, recorded in the report."""
    quick: bool = False
    database_url: str | None = None
    """An existing, migrated PostgreSQL database to measure instead of a database of the
    benchmark's own (``--database-url``); never printed (it may hold a password)."""


def with_overrides(sizes: Sizes, **overrides: int | None) -> Sizes:
    """``sizes`` with every given (not None) field replaced."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return replace(sizes, **given)
