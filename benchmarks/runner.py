"""Runs every phase on every requested backend, in one process, and collects the figures.

Phases run in an order that lets later ones reuse what earlier ones stored: the batch figures
work on an emptied table, then the gapped series and the streamed series are seeded once and
stay for the coverage and memory figures. Seeding goes around the library (raw COPY or
executemany), so the candle catalog is rebuilt after it, untimed, before anything reads it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from tests.support.pg_cluster import PostgresServer

from benchmarks import (
    bench_coverage,
    bench_ledger,
    bench_orm,
    bench_reads,
    bench_scopes,
    bench_series,
    bench_stream,
    bench_trades,
    bench_writes,
)
from benchmarks.candles import last_open_time
from benchmarks.config import Config
from benchmarks.databases import (
    Database,
    existing_postgres_database,
    postgres_database,
    postgres_server,
    refresh_statistics,
    sqlite_database,
)
from benchmarks.machine import describe, load_average
from benchmarks.results import BackendResults

T = TypeVar("T")


@dataclass
class Run:
    """Everything the report needs."""

    results: list[BackendResults]
    machine: dict[str, str]
    started: datetime
    seconds: float = 0.0
    postgres_origin: str = ""
    notes: list[str] = field(default_factory=list)


def run(config: Config) -> Run:
    """Measure every backend in ``config``; PostgreSQL gets its server for the duration."""
    began = time.perf_counter()
    load_at_start = load_average()
    outcome = Run([], describe(), datetime.now(UTC))
    if "sqlite" in config.backends:
        outcome.results.append(asyncio.run(_sqlite(config)))
    if "postgresql" in config.backends and config.database_url:
        outcome.postgres_origin = "existing database (--database-url), used as it is"
        outcome.results.append(asyncio.run(_existing(config.database_url, config)))
    elif "postgresql" in config.backends:
        with postgres_server() as (server, origin):
            outcome.postgres_origin = origin
            if server is None:
                _log(f"postgresql: SKIPPED, {origin}")
                outcome.results.append(BackendResults("postgresql", skipped=origin))
            else:
                outcome.results.append(asyncio.run(_postgres(server, config)))
    outcome.seconds = time.perf_counter() - began
    outcome.machine["Load average at start (1/5/15 min)"] = load_at_start
    outcome.machine["Load average at end (1/5/15 min)"] = load_average()
    return outcome


async def _sqlite(config: Config) -> BackendResults:
    async with sqlite_database() as db:
        return await _backend(db, config)


async def _postgres(server: PostgresServer, config: Config) -> BackendResults:
    async with postgres_database(server, _last_candle(config)) as db:
        return await _backend(db, config)


async def _existing(url: str, config: Config) -> BackendResults:
    async with existing_postgres_database(url, _last_candle(config)) as db:
        return await _backend(db, config)


def _last_candle(config: Config) -> datetime:
    """An upper bound of the open times of every candle the run writes."""
    sizes = config.sizes
    return last_open_time(
        sizes.rows,
        sizes.gap_rows,
        sizes.stream_rows,
        min(sizes.coverage_rows, bench_coverage.LARGE_SERIES_ROWS),
    )


async def _backend(db: Database, config: Config) -> BackendResults:
    sizes = config.sizes
    out = BackendResults(db.backend, db.server_version)
    began = time.perf_counter()

    async def phase(name: str, work: Awaitable[T]) -> T:
        start = time.perf_counter()
        _log(f"{db.backend}: {name} ...")
        result = await work
        _log(f"{db.backend}: {name} done in {time.perf_counter() - start:.1f} s")
        return result

    await phase("insert_many / upsert_many", bench_writes.run(db, sizes, out))
    await phase("get_range", bench_reads.run(db, sizes, out))
    await phase("naive ORM paths", bench_orm.run(db, sizes, out))
    series = await phase("seed gapped series", bench_series.seed(db, sizes))
    await refresh_statistics(db)
    await phase("get_gaps / get_coverage", bench_series.run(db, sizes, out, series))
    await phase("seed streamed series", bench_stream.seed(db, sizes))
    await refresh_statistics(db)
    await phase("rebuild the candle catalog", bench_series.rebuild_catalog(db))
    await phase("stream_range", bench_stream.run(db, sizes, out))
    stored = series.stored + sizes.stream_rows
    await phase("get_coverage, all series", bench_coverage.run(db, sizes, out, stored))
    if db.own_rows_only:  # the statistics cover every trade stored, and the rollup writes
        out.checks.append("trade statistics: not run on an existing database (--database-url)")
    else:
        await phase("trade statistics", bench_trades.run(db, sizes, out))
    if db.own_rows_only:  # writes and truncates the trades table
        out.checks.append("scopes: not run on an existing database (--database-url)")
    else:
        await phase("scopes", bench_scopes.run(db, sizes, out))
    if db.own_rows_only:  # writes and truncates the ledger tables
        out.checks.append("futures ledger: not run on an existing database (--database-url)")
    else:
        await phase("futures ledger", bench_ledger.run(db, sizes, out))
    if sizes.coverage_rows and db.backend == "postgresql":
        large = await phase("seed large table", bench_coverage.seed_large(db, sizes))
        await phase("get_coverage, large", bench_coverage.run(db, sizes, out, large))
    out.seconds = time.perf_counter() - began
    return out


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
