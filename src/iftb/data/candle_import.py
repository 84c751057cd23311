"""Import candle files into the store: a file is one unit, in constant memory.

The file is read twice, streamed in chunks. The first pass checks every row (a malformed one
raises ``CandleFileError`` naming file, line and reason before anything is written) and notes
the days its candles fall on; the second writes it in one unit of work, each chunk one upsert,
after the partitions those days need are made (in a transaction of their own, as Citus needs).
So a bad row anywhere writes nothing, and importing the same file again changes nothing. On
SQLite the unit holds the write lock while it writes: import beside a running bot in files of
a size it can wait for (``DB_BUSY_TIMEOUT``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from iftb.data.candle_files import (
    CandleChunk,
    CandleFileError,
    FileFormat,
    read_candles,
)
from iftb.data.storage import DatabaseManager, OHLCVRepository


@dataclass(slots=True)
class ImportSummary:
    """What an import did. ``updated`` counts candles that were already stored."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: list[CandleFileError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


async def import_candle_file(
    manager: DatabaseManager,
    path: Path,
    symbol: str,
    timeframe: str,
    exchange: str = "binance",
    *,
    file_format: FileFormat = "auto",
    skip_invalid: bool = False,
    chunk_size: int = 10_000,
    progress: Callable[[CandleChunk], None] | None = None,
    summary: ImportSummary | None = None,
    price_type: str | None = None,
) -> ImportSummary:
    """Upsert every candle of ``path`` in one unit of work; ``progress`` is called after each
    chunk is written (the whole file commits at the end).

    Pass the same ``summary`` to several calls to total an import of many files.
    """
    summary = summary if summary is not None else ImportSummary()
    started = time.perf_counter()

    def chunks() -> Iterator[CandleChunk]:
        return read_candles(
            path,
            symbol,
            timeframe,
            exchange,
            file_format=file_format,
            chunk_size=chunk_size,
            skip_invalid=skip_invalid,
            price_type=price_type,
        )

    try:
        days, kind = _checked(chunks())
        series = (symbol, timeframe, exchange, kind)
        async with manager.get_session() as session:
            repo = OHLCVRepository(session)
            await repo.create_partitions_for(days)
            before = await _stored(repo, *series)
            distinct = 0
            for chunk in chunks():
                if chunk.bars:
                    await repo.upsert_many(chunk.bars)
                    distinct += len({bar.timestamp for bar in chunk.bars})
                summary.rows += chunk.rows
                summary.rejected.extend(chunk.rejected)
                if progress is not None:
                    progress(chunk)
            inserted = await _stored(repo, *series) - before
        summary.inserted += inserted
        summary.updated += distinct - inserted
    finally:
        summary.seconds += time.perf_counter() - started
    return summary


def _checked(chunks: Iterator[CandleChunk]) -> tuple[list[datetime], str]:
    """Read the whole file once, checking every row (``read_candles`` raises on a bad one):
    the midnight of each day its candles open on (a partition is made of whole days), and
    their price type."""
    days: set[date] = set()
    kind = "trade"
    for chunk in chunks:
        days.update(bar.timestamp.date() for bar in chunk.bars)
        kind = chunk.bars[0].price_type if chunk.bars else kind
    return [datetime(day.year, day.month, day.day, tzinfo=UTC) for day in sorted(days)], kind


async def _stored(
    repo: OHLCVRepository, symbol: str, timeframe: str, exchange: str, price_type: str
) -> int:
    """The series' candle count in the catalog (no read of the candles themselves)."""
    found = await repo.get_inventory(symbol, timeframe, exchange, price_type=price_type)
    return found[0].count if found else 0
