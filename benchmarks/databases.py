"""The databases under test: a migrated SQLite file and a migrated PostgreSQL database.

PostgreSQL is the server in ``IFTB_TEST_POSTGRES_URL`` when set, otherwise a throwaway
PostgreSQL 15 cluster from ``tests/support/pg_cluster.py`` (fsync off: the data is disposable),
in which the benchmark creates its own database and drops it afterwards — or, with
``--database-url``, an existing database used as it is (``existing_postgres_database``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url
from tests.support.pg_cluster import (
    PostgresServer,
    postgres_binaries_available,
    server_from_env,
    throwaway_cluster,
)

from benchmarks.candles import T0
from benchmarks.raw_driver import RawDriver
from benchmarks.raw_postgres import RawPostgres
from benchmarks.raw_sqlite import RawSQLite
from iftb.data.storage import DatabaseManager, SchemaOutOfDateError

BENCH_DATABASE = f"iftb_bench_{os.getpid()}"


@dataclass
class Database:
    """One migrated database, reachable through the library and through the raw driver."""

    backend: str
    url: str
    """SQLAlchemy URL (contains the password on PostgreSQL: never print it)."""
    manager: DatabaseManager
    raw: RawDriver
    server_version: str
    own_rows_only: bool = False
    """An existing database: other series may be stored, and only the benchmark's own
    (``candles.OWN_SYMBOLS``) may be written or deleted."""


@contextmanager
def postgres_server() -> Iterator[tuple[PostgresServer | None, str]]:
    """The server to use and where it comes from, or None and why there is none."""
    external = server_from_env()
    if external is not None:
        yield external, "external server (IFTB_TEST_POSTGRES_URL)"
        return
    if not postgres_binaries_available():
        yield None, "no PostgreSQL binaries and IFTB_TEST_POSTGRES_URL unset"
        return
    with throwaway_cluster() as server:
        yield server, "throwaway cluster (tests/support/pg_cluster.py, fsync off)"


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[Database]:
    """A fresh SQLite file in a temporary directory, migrated by DatabaseManager."""
    import sqlite3

    with tempfile.TemporaryDirectory(prefix="iftb-bench-") as directory:
        path = Path(directory) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        manager = DatabaseManager(url)
        await manager.connect()  # SQLite migrates itself on connect
        raw = RawSQLite(path)
        try:
            yield Database("sqlite", url, manager, raw, sqlite3.sqlite_version)
        finally:
            await raw.close()
            await manager.disconnect()


@asynccontextmanager
async def postgres_database(server: PostgresServer, until: datetime) -> AsyncIterator[Database]:
    """A new database on ``server``, migrated by DatabaseManager, dropped afterwards.

    The candle table is partitioned by month (migration 0002): the partitions for every candle
    the benchmarks write, from ``T0`` to ``until``, are created here, before any timer, so the
    raw COPY has somewhere to go. The library still checks them on every write, timed.
    """
    admin = await asyncpg.connect(server.url(driver=""))
    try:
        await admin.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
        version = str(await admin.fetchval("SHOW server_version"))
    finally:
        await admin.close()
    url = server.url(BENCH_DATABASE)
    manager = DatabaseManager(url)
    try:
        await manager.migrate()
        await manager.connect()
        raw = await RawPostgres.connect(server.url(BENCH_DATABASE, driver=""))
        await raw.ensure_partitions(T0, until)
        try:
            yield Database("postgresql", url, manager, raw, version)
        finally:
            await raw.close()
    finally:
        await manager.disconnect()
        admin = await asyncpg.connect(server.url(driver=""))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        finally:
            await admin.close()


class NotAtHeadError(RuntimeError):
    """The existing database is not migrated to the schema head."""


@asynccontextmanager
async def existing_postgres_database(url: str, until: datetime) -> AsyncIterator[Database]:
    """The database at ``url``, used as it is: it must be migrated to the head already.

    Only the benchmark's own series are written; they are deleted before the run (leftovers of
    an interrupted one) and after it, and so are the candle partitions the run created that
    are still empty then. Nothing else in the database is changed.
    """
    manager = DatabaseManager(url)
    try:
        await manager.connect()
    except SchemaOutOfDateError as exc:
        await manager.disconnect()
        raise NotAtHeadError(
            f"--database-url: {exc} (the benchmark never migrates a database it did not create)"
        ) from exc
    raw_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        raw = await RawPostgres.connect(raw_url, own_rows_only=True)
        try:
            partitions_before = await raw.partitions()
            await raw.clear_candles()
            await raw.ensure_partitions(T0, until)
            version = await raw.server_version()
            yield Database("postgresql", url, manager, raw, version, own_rows_only=True)
        finally:
            await raw.clear_candles()
            await raw.drop_empty_partitions(await raw.partitions() - partitions_before)
            await raw.close()
    finally:
        await manager.disconnect()


async def refresh_statistics(db: Database) -> None:
    """What autovacuum would have done by now after a bulk load: planner statistics, and on
    PostgreSQL the visibility map too (so index-only scans apply)."""
    await db.raw.execute("VACUUM ANALYZE ohlcv" if db.backend == "postgresql" else "ANALYZE ohlcv")
