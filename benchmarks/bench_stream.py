"""stream_range over millions of candles: throughput against a raw cursor, and peak RSS growth.

Each run is a fresh subprocess (``stream_probe``), so the memory figure is the stream's own:
the RSS at the start of the stream against the highest RSS sampled while reading it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from benchmarks.candles import STREAM_SYMBOL, native_rows
from benchmarks.config import Sizes
from benchmarks.databases import Database
from benchmarks.results import BackendResults, Figure, Target
from benchmarks.stream_probe import CHUNK_SIZE, URL_VARIABLE
from benchmarks.targets import STREAM_RSS_MB
from benchmarks.timing import Samples

SYMBOL = STREAM_SYMBOL
_MB = 1024 * 1024
_REPO_ROOT = Path(__file__).resolve().parent.parent


async def seed(db: Database, sizes: Sizes) -> None:
    """Store the series that is streamed (it stays for the later phases)."""
    await db.raw.load(native_rows(SYMBOL, 0, sizes.stream_rows))


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    """Stream the series through the library and through a raw cursor, alternately."""
    repetitions = min(sizes.repetitions, sizes.stream_repetitions)
    runs: dict[str, list[dict[str, float]]] = {"library": [], "raw": []}
    for index in range(repetitions):
        sides = ["library", "raw"] if index % 2 == 0 else ["raw", "library"]
        for side in sides:
            result = await _probe(db, side, sizes.stream_rows)
            if result["rows"] != sizes.stream_rows:
                raise RuntimeError(f"{side} stream read {result['rows']} of {sizes.stream_rows}")
            runs[side].append(result)
    growth = {side: max(_growth(run) for run in results) for side, results in runs.items()}
    met = growth["library"] < STREAM_RSS_MB
    out.figures.append(
        Figure(
            "stream_range",
            sizes.stream_rows,
            _seconds(runs["library"]),
            _seconds(runs["raw"]),
            "raw cursor",
            Target(
                f"peak RSS growth < {STREAM_RSS_MB:g} MB",
                met,
                f"+{growth['library']:.0f} MB (raw cursor +{growth['raw']:.0f} MB)",
            ),
            note=f"chunks of {CHUNK_SIZE:,}; RSS growth is the worst of {repetitions} runs",
        )
    )


async def _probe(db: Database, side: str, rows: int) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.stream_probe",
        side,
        SYMBOL,
        str(rows),
        cwd=_REPO_ROOT,
        env={**os.environ, URL_VARIABLE: db.url},
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"stream probe ({side}) failed with exit status {process.returncode}")
    result: dict[str, float] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def _growth(run: dict[str, float]) -> float:
    return (run["peak_rss"] - run["baseline_rss"]) / _MB


def _seconds(runs: list[dict[str, float]]) -> Samples:
    return Samples(tuple(run["seconds"] for run in runs))
