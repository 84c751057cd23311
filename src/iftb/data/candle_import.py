"""Import candle files into the store: streamed in chunks, each chunk one idempotent upsert.

Each chunk is its own unit of work, so a long import commits as it goes and a malformed row
stops it with nothing of that chunk written; importing the same file again changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iftb.data.candle_files import CandleChunk, CandleFileError, FileFormat, read_candles
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
    """Upsert every candle of ``path``; ``progress`` is called after each chunk is committed.

    Pass the same ``summary`` to several calls to total an import of many files.
    """
    summary = summary if summary is not None else ImportSummary()
    started = time.perf_counter()
    chunks = read_candles(
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
        for chunk in chunks:
            if chunk.bars:
                inserted, distinct = await _upsert_counting(manager, chunk)
                summary.inserted += inserted
                summary.updated += distinct - inserted
            summary.rows += chunk.rows
            summary.rejected.extend(chunk.rejected)
            if progress is not None:
                progress(chunk)
    finally:
        summary.seconds += time.perf_counter() - started
    return summary


async def _upsert_counting(manager: DatabaseManager, chunk: CandleChunk) -> tuple[int, int]:
    """Upsert a chunk; return how many candles were new (the series' count in the candle
    catalog before and after: no read of the candles, so a new month's partition is still made
    in a transaction of its own) and how many distinct it held."""
    first = chunk.bars[0]
    series = (first.symbol, first.timeframe, first.exchange)
    async with manager.get_session() as session:
        repo = OHLCVRepository(session)
        before = await _stored(repo, *series, first.price_type)
        await repo.upsert_many(chunk.bars)
        after = await _stored(repo, *series, first.price_type)
    return after - before, len({bar.timestamp for bar in chunk.bars})


async def _stored(
    repo: OHLCVRepository, symbol: str, timeframe: str, exchange: str, price_type: str
) -> int:
    found = await repo.get_inventory(symbol, timeframe, exchange, price_type=price_type)
    return found[0].count if found else 0
