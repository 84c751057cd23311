"""Child process of the streaming benchmark: read one series once, report time and peak RSS.

A fresh process per run, so that the RSS growth measured is the stream's alone (not memory the
parent already holds or has freed without returning it to the OS). Usage::

    IFTB_BENCH_URL=<SQLAlchemy URL> python -m benchmarks.stream_probe {library|raw} SYMBOL ROWS

The URL travels in the environment, never on the command line, since it holds the password.
Prints one JSON object: rows, seconds, baseline and peak RSS in bytes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from benchmarks.candles import STEP, T0, TIMEFRAME
from benchmarks.raw_driver import RawDriver
from benchmarks.raw_postgres import RawPostgres
from benchmarks.raw_sqlite import RawSQLite
from iftb.data.storage import DatabaseManager, OHLCVRepository

URL_VARIABLE = "IFTB_BENCH_URL"
CHUNK_SIZE = 10_000
SAMPLE_EVERY = 1_000
"""Rows between two RSS samples."""
_WARM_UP_ROWS = 1_000


async def measure(rows: AsyncIterator[Any], warm_up: AsyncIterator[Any]) -> dict[str, float]:
    """Drain ``warm_up``, then time draining ``rows`` while sampling RSS."""
    async for _ in warm_up:
        pass
    process = psutil.Process()
    gc.collect()
    baseline = peak = process.memory_info().rss
    count = 0
    start = time.perf_counter()
    async for _ in rows:
        count += 1
        if count % SAMPLE_EVERY == 0:
            peak = max(peak, process.memory_info().rss)
    seconds = time.perf_counter() - start
    peak = max(peak, process.memory_info().rss)
    return {"rows": count, "seconds": seconds, "baseline_rss": baseline, "peak_rss": peak}


async def library_side(url: str, symbol: str, rows: int) -> dict[str, float]:
    manager = DatabaseManager(url)
    await manager.connect()
    try:
        async with manager.get_session() as session:
            repository = OHLCVRepository(session)
            end = T0 + STEP * (rows - 1)
            warm_up = repository.stream_range(
                symbol, TIMEFRAME, T0, T0 + STEP * (_WARM_UP_ROWS - 1), chunk_size=CHUNK_SIZE
            )
            stream = repository.stream_range(symbol, TIMEFRAME, T0, end, chunk_size=CHUNK_SIZE)
            return await measure(stream, warm_up)
    finally:
        await manager.disconnect()


async def raw_side(url: str, symbol: str, rows: int) -> dict[str, float]:
    raw: RawDriver
    if url.startswith("sqlite"):
        raw = RawSQLite(Path(url.split(":///", 1)[1]))
    else:
        raw = await RawPostgres.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        end = T0 + STEP * (rows - 1)
        warm_up = raw.stream_range(symbol, T0, T0 + STEP * (_WARM_UP_ROWS - 1), CHUNK_SIZE)
        return await measure(raw.stream_range(symbol, T0, end, CHUNK_SIZE), warm_up)
    finally:
        await raw.close()


def main(argv: list[str]) -> int:
    side, symbol, rows = argv[0], argv[1], int(argv[2])
    url = os.environ[URL_VARIABLE]
    probe = library_side if side == "library" else raw_side
    print(json.dumps(asyncio.run(probe(url, symbol, rows))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
