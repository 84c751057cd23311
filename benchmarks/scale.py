"""The large run of docs/scaling.md: one plain and one partitioned candle table side by side.

    .venv/bin/python -m benchmarks.scale [--symbols 500] [--hours 40000]

Both tables live in a throwaway PostgreSQL 15 cluster (fsync off, as in the test suite), one
database at revision 0001 (plain) and one at head (partitioned by month). Each gets the same
candles, loaded by binary COPY in batches of 50,000 rows, symbol by symbol (a backfill). Then,
on both: latest-100 reads (the bot's hot path) for random symbols, a month's range of one symbol,
coverage of every series (by scanning; at head also from the candle catalog, which the load went
around, so it is rebuilt first and the rebuild timed: what migration 0010's backfill costs at
that size), and retention of the oldest month (DELETE on the plain table; DROP of
its partition, through ``OHLCVRepository.purge``, on the partitioned one). Reads go through
``OHLCVRepository``. Prints a Markdown table for docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from tests.support.pg_cluster import PostgresServer, throwaway_cluster

from benchmarks.raw_postgres import ENSURE_SPAN
from iftb.data.storage import CandleCatalogRepository, DatabaseManager, OHLCVRepository
from iftb.data.storage.engine import POSTGRES_SERVER_SETTINGS

T0 = datetime(2021, 1, 1, tzinfo=UTC)
BATCH = 50_000
COLUMNS = ("symbol", "exchange", "timeframe", "timestamp", "open", "high", "low", "close", "volume")


def rows(symbols: int, hours: int) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of candle rows, symbol after symbol: hourly candles from T0."""
    batch: list[tuple[Any, ...]] = []
    for s in range(symbols):
        symbol = f"S{s:04d}USDT"
        price = Decimal(100 + s)
        for h in range(hours):
            level = price + Decimal(h % 500) / 100
            batch.append(
                (symbol, "binance", "1h", T0 + timedelta(hours=h), level, level + 1, level - 1,
                 level, Decimal(h % 1000))
            )  # fmt: skip
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


async def ingest(server: PostgresServer, database: str, symbols: int, hours: int) -> float:
    """Rows per second of binary COPY into ``ohlcv`` (partitions made ahead where there are)."""
    connection = await asyncpg.connect(server.url(database, driver=""))
    try:
        if await connection.fetchval("SELECT to_regproc('iftb_ensure_ohlcv_partitions')"):
            last = T0 + timedelta(hours=hours)
            await connection.execute(ENSURE_SPAN, T0, last)
        started, total = time.perf_counter(), 0
        for batch in rows(symbols, hours):
            await connection.copy_records_to_table("ohlcv", records=batch, columns=COLUMNS)
            total += len(batch)
        elapsed = time.perf_counter() - started
        await connection.execute("ANALYZE ohlcv")
        return total / elapsed
    finally:
        await connection.close()


async def timings(work: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    results = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        results.append((time.perf_counter() - started) * 1000)
    return results


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.99 * len(values)) - 1)]


async def measure(url: str, symbols: int, hours: int, partitioned: bool) -> dict[str, str]:
    engine = create_async_engine(url, connect_args={"server_settings": POSTGRES_SERVER_SETTINGS})
    rng = random.Random(1)
    figures: dict[str, str] = {}
    try:
        figures["catalog rebuild after the load: s"] = "n/a (revision 0001 has no catalog)"
        if partitioned:
            async with AsyncSession(engine) as session:
                started = time.perf_counter()
                await CandleCatalogRepository(session).rebuild()
                await session.commit()
                figures["catalog rebuild after the load: s"] = (
                    f"{time.perf_counter() - started:.2f}"
                )
        async with AsyncSession(engine) as session:
            repo = OHLCVRepository(session)

            async def latest() -> None:
                symbol = f"S{rng.randrange(symbols):04d}USDT"
                assert len(await repo.get_latest(symbol, "1h", limit=100)) == 100

            for _ in range(20):  # warm the cache as a running bot has it
                await latest()
            lat = await timings(latest, 1_000)
            figures["latest-100: median / p99 ms"] = (
                f"{statistics.median(lat):.2f} / {p99(lat):.2f}"
            )

            month = T0 + timedelta(days=400)

            async def month_range() -> None:
                symbol = f"S{rng.randrange(symbols):04d}USDT"
                bars = await repo.get_range(symbol, "1h", month, month + timedelta(days=30))
                assert len(bars) == 721

            rng_times = await timings(month_range, 50)
            figures["a month of one symbol (721 candles): median ms"] = (
                f"{statistics.median(rng_times):.1f}"
            )
            started = time.perf_counter()
            series = await repo.scan_coverage()
            figures["coverage of every series, scanned: s"] = f"{time.perf_counter() - started:.2f}"
            assert len(series) == symbols
            figures["coverage of every series, catalog: ms"] = "n/a (no catalog)"
            if partitioned:
                started = time.perf_counter()
                listed = await repo.get_coverage()
                elapsed = (time.perf_counter() - started) * 1000
                figures["coverage of every series, catalog: ms"] = f"{elapsed:.1f}"
                assert listed == series, "the catalog disagrees with the scan"
            await session.rollback()

        first_month_end = datetime(2021, 2, 1, tzinfo=UTC)
        started = time.perf_counter()
        async with AsyncSession(engine) as session:
            if partitioned:
                removed = await OHLCVRepository(session).purge(first_month_end)
            else:  # revision 0001 has no partition functions: what purge does there, as SQL
                result = await session.execute(
                    text("DELETE FROM ohlcv WHERE timestamp < :cut"), {"cut": first_month_end}
                )
                removed = result.rowcount  # type: ignore[attr-defined]
            await session.commit()
        elapsed = time.perf_counter() - started
        if not partitioned:  # a DELETE leaves dead rows behind: reclaiming them is its cost too
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                vacuum_started = time.perf_counter()
                await autocommit.execute(text("VACUUM ohlcv"))
                figures["VACUUM after the retention: s"] = (
                    f"{time.perf_counter() - vacuum_started:.2f}"
                )
        else:
            figures["VACUUM after the retention: s"] = "not needed"
        assert removed == symbols * 31 * 24, removed
        method = "DROP PARTITION" if partitioned else "DELETE"
        figures["retention of the oldest month: s"] = f"{elapsed:.2f} ({method}, {removed:,} rows)"
    finally:
        await engine.dispose()
    return figures


async def size_of(server: PostgresServer, database: str) -> str:
    connection = await asyncpg.connect(server.url(database, driver=""))
    try:
        size = await connection.fetchval("SELECT pg_database_size(current_database())")
        return f"{size / 2**30:.1f} GiB"
    finally:
        await connection.close()


async def run(symbols: int, hours: int) -> None:
    with throwaway_cluster() as server:
        admin = await asyncpg.connect(server.url(driver=""))
        for name in ("scale_plain", "scale_partitioned"):
            await admin.execute(f"CREATE DATABASE {name}")
        version = await admin.fetchval("SHOW server_version")
        await admin.close()
        plain = DatabaseManager(server.url("scale_plain"))
        await plain.migrate("0001")
        await plain.disconnect()
        parted = DatabaseManager(server.url("scale_partitioned"))
        await parted.migrate()
        await parted.disconnect()

        results: dict[str, dict[str, str]] = {}
        for name, partitioned in (("plain", False), ("partitioned", True)):
            database = f"scale_{name}"
            speed = await ingest(server, database, symbols, hours)
            figures = {"ingest (binary COPY, 50k batches): rows/s": f"{speed:,.0f}"}
            figures["size after ingest"] = await size_of(server, database)
            figures |= await measure(server.url(database), symbols, hours, partitioned)
            results[name] = figures
            print(name, figures, flush=True)

    total = symbols * hours
    print(f"\nPostgreSQL {version}, {total:,} candles ({symbols} symbols × {hours:,} hourly)\n")
    print("| figure | plain table | partitioned by month |\n|---|---|---|")
    for figure in results["plain"]:
        print(f"| {figure} | {results['plain'][figure]} | {results['partitioned'][figure]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--hours", type=int, default=40_000)
    args = parser.parse_args()
    asyncio.run(run(args.symbols, args.hours))


if __name__ == "__main__":
    main()
