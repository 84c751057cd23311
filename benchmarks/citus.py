"""Plain PostgreSQL against Citus, through the library, in one run.

    .venv/bin/python -m benchmarks.citus             # default sizes (about 2 minutes on 2 cores)
    .venv/bin/python -m benchmarks.citus --quick     # smoke run (seconds), prints only

Starts a throwaway PostgreSQL 15 cluster and a throwaway Citus cluster (a coordinator and two
workers, ``tests/support/citus_cluster.py``), all on this machine with fsync off; migrates a
database on each, distributes the Citus one (``DatabaseManager.distribute``: ``--shard-count``
shards, three months of partitions ahead), makes the same months ahead on the plain one, and
times the same ``OHLCVRepository`` calls on both (``citus_work``). Prints a Markdown table and
writes it, with the machine and versions, to ``benchmarks/citus_results.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from tests.support.citus_cluster import CitusCluster, create_database, throwaway_citus_cluster
from tests.support.pg_cluster import PostgresServer, throwaway_cluster

from benchmarks.citus_report import Outcome, render
from benchmarks.citus_work import (
    QUICK_WORKLOAD,
    Side,
    Workload,
    first_month_after,
    measure,
    prepare,
)
from benchmarks.cli import positive
from benchmarks.machine import describe, load_average
from benchmarks.raw_postgres import RawPostgres
from iftb.data.storage import DatabaseManager, OHLCVRepository

DATABASE = "iftb_citus_bench"
MONTHS_AHEAD = 3
DEFAULT_OUTPUT = Path("benchmarks/citus_results.md")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    work = QUICK_WORKLOAD if args.quick else Workload()
    given = {
        name: getattr(args, name)
        for name in ("symbols", "hours", "batch", "repetitions")
        if getattr(args, name) is not None
    }
    work = replace(work, **given)
    shards = args.shard_count or (4 if args.quick else 32)
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.citus", *(argv or sys.argv[1:])])
    outcome = Outcome(command, work, shards, describe(), datetime.now(UTC))
    outcome.machine["Load average at start (1/5/15 min)"] = load_average()
    began = time.perf_counter()
    with ExitStack() as stack:
        _log("starting a PostgreSQL cluster and a Citus cluster (coordinator + 2 workers)")
        plain = stack.enter_context(throwaway_cluster())
        citus = stack.enter_context(throwaway_citus_cluster())
        asyncio.run(_run(plain, citus, outcome))
    outcome.seconds = time.perf_counter() - began
    outcome.machine["Load average at end (1/5/15 min)"] = load_average()
    markdown = render(outcome)
    print(markdown)
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(markdown, encoding="utf-8")
        _log(f"report written to {output}")
    return 0


async def _run(plain: PostgresServer, citus: CitusCluster, outcome: Outcome) -> None:
    admin = await asyncpg.connect(plain.url(driver=""))
    try:
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        outcome.versions["PostgreSQL server"] = str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()
    await create_database(citus, DATABASE)
    coordinator = await asyncpg.connect(citus.coordinator.url(DATABASE, driver=""))
    try:
        version = str(await coordinator.fetchval("SELECT citus_version()"))  # "Citus 12.1.12 on …"
        outcome.versions["Citus"] = version.split(" on ", 1)[0]
    finally:
        await coordinator.close()
    sides: list[Side] = []
    try:
        sides.append(await _side("plain PostgreSQL", plain.url(DATABASE), None, outcome))
        citus_url = citus.coordinator.url(DATABASE)
        sides.append(await _side("Citus", citus_url, outcome.shard_count, outcome))
        for side in sides:
            _log(f"{side.name}: partitions of the candles, warm-up write")
            await prepare(side, outcome.work)
        _log(f"measuring {outcome.work.rows:,} candles, {outcome.work.repetitions} repetitions")
        outcome.figures = await measure(sides[0], sides[1], outcome.work)
    finally:
        for side in sides:
            await side.raw.close()
            await side.manager.disconnect()


async def _side(name: str, url: str, shard_count: int | None, outcome: Outcome) -> Side:
    """Migrate; distribute (Citus) or make the same months ahead (plain); connect."""
    manager = DatabaseManager(url)
    await manager.migrate()
    now = datetime.now(UTC)
    if shard_count is not None:
        _log(f"{name}: distributing over {shard_count} shards")
        started = time.perf_counter()
        distribution = await manager.distribute(shard_count, months_ahead=MONTHS_AHEAD)
        outcome.versions["Citus extension"] = distribution.citus_version
        outcome.versions["Citus workers"] = str(distribution.workers)
        outcome.distribute_seconds = time.perf_counter() - started
    await manager.connect()
    if shard_count is None:  # what distribute does for Citus: this month and the next three
        async with manager.get_session() as session:
            await OHLCVRepository(session).create_partitions(
                now + timedelta(days=31 * MONTHS_AHEAD)
            )
    raw_url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    raw = await RawPostgres.connect(raw_url)
    next_month = first_month_after(now + timedelta(days=31 * MONTHS_AHEAD))
    return Side(name, manager, raw, next_month)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.citus",
        description="Time the library on plain PostgreSQL and on Citus in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, prints only")
    parser.add_argument("--symbols", type=positive, help="series (default 100)")
    parser.add_argument("--hours", type=positive, help="hourly candles per series (2000)")
    parser.add_argument("--batch", type=positive, help="candles per write call (10000)")
    parser.add_argument("--repetitions", type=positive, help="timed repetitions (5)")
    parser.add_argument("--shard-count", type=positive, help="Citus shards (32; --quick 4)")
    parser.add_argument(
        "--output", type=Path, help=f"report path (default {DEFAULT_OUTPUT}; --quick prints only)"
    )
    return parser


def _log(message: str) -> None:
    print(f"[citus {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
