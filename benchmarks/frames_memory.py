"""The memory figure of ``bench_frames``: a candle read into float64 columns in a fresh process
(so the RSS growth is the read's alone), set against the frame's own size."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from benchmarks.candles import STEP, TIMEFRAME
from benchmarks.databases import Database
from benchmarks.frames_report import MEMORY, MEMORY_START, SYMBOL, URL_VARIABLE
from benchmarks.results import Figure
from benchmarks.timing import Samples
from iftb.data.storage import OHLCVRepository


@dataclass(frozen=True)
class Probe:
    rows: int
    seconds: float
    baseline_rss: int
    peak_rss: int
    frame_bytes: int


async def memory(db: Database, rows: int) -> Figure:
    environment = dict(os.environ, **{URL_VARIABLE: db.url})
    command = [sys.executable, "-m", "benchmarks.bench_frames", "probe", str(rows)]
    done = await asyncio.to_thread(
        subprocess.run, command, env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        error = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return Figure(MEMORY, rows, Samples((0.0,)), None, note=f"the read failed: {error[0]}")
    probe = Probe(**json.loads(done.stdout.strip().splitlines()[-1]))
    if probe.rows != rows:
        raise RuntimeError(f"frames: the memory probe read {probe.rows} of {rows}")
    growth = probe.peak_rss - probe.baseline_rss
    note = (
        f"peak RSS growth {growth / 2**20:,.0f} MiB for a frame of {probe.frame_bytes / 2**20:,.0f}"
        f" MiB: {growth / probe.frame_bytes:.2f}× the frame's own size ({probe.seconds:.1f} s)"
    )
    return Figure(MEMORY, rows, Samples((probe.seconds,)), None, note=note)


def probe(rows: int) -> None:
    """Child process: read ``rows`` candles once, print time, RSS and the frame's size."""
    import psutil  # type: ignore[import-untyped]

    from iftb.data.storage import DatabaseManager

    async def read() -> dict[str, int | float]:
        manager = DatabaseManager(os.environ[URL_VARIABLE])
        await manager.connect()
        try:
            async with manager.get_session(read_only=True) as session:  # warm-up: imports
                await OHLCVRepository(session).get_frame(
                    SYMBOL, TIMEFRAME, MEMORY_START, MEMORY_START + STEP
                )
            process = psutil.Process()
            baseline = peak = process.memory_info().rss
            done = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, process.memory_info().rss)
                    await asyncio.sleep(0.005)

            sampler = asyncio.create_task(sample())
            began = time.perf_counter()
            async with manager.get_session(read_only=True) as session:
                frame = await OHLCVRepository(session).get_frame(
                    SYMBOL, TIMEFRAME, MEMORY_START, MEMORY_START + STEP * (rows - 1)
                )
            seconds = time.perf_counter() - began
            done.set()
            await sampler
            peak = max(peak, process.memory_info().rss, _maxrss())
            size = int(frame.memory_usage(index=True, deep=True).sum())
            return {
                "rows": len(frame),
                "seconds": seconds,
                "baseline_rss": baseline,
                "peak_rss": peak,
                "frame_bytes": size,
            }
        finally:
            await manager.disconnect()

    print(json.dumps(asyncio.run(read())))


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
