"""The raw PostgreSQL side: one bare asyncpg connection to the same database.

Writes are binary COPY (``copy_records_to_table``); the upsert copies into a temporary staging
table and merges with one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` — the fastest ways
asyncpg offers, and the ones the library itself is built on.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from benchmarks.candles import EXCHANGE, OWN_SYMBOLS, TIMEFRAME, NativeRow
from benchmarks.raw_driver import DriverRow
from benchmarks.sql import (
    NATIVE_COLUMNS,
    PG_CREATE_STAGE,
    PG_DELETE_OWN,
    PG_MERGE,
    PG_OWN_CANDLES,
    PG_RANGE,
    PG_STAGE,
    PG_TIMESTAMPS,
    TRADE_COLUMNS,
)

ENSURE_SPAN = (
    "SELECT iftb_ensure_ohlcv_partitions(ARRAY(SELECT generate_series($1::timestamptz, $2, "
    "interval '1 day')) || $2::timestamptz)"
)
"""Every partition from $1 to $2: the function takes open times, and a day lies in one unit."""
PARTITIONS = "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'ohlcv'::regclass"
"""The candle table's partitions, as quoted (and where needed qualified) SQL names."""


class RawPostgres:
    """Bare asyncpg, session time zone UTC like the library's connections.

    With ``own_rows_only`` (a database the benchmark did not create) emptying the candles
    deletes the benchmark's own series (``OWN_SYMBOLS``) instead of truncating the table.
    """

    backend = "postgresql"

    def __init__(self, connection: Any, *, own_rows_only: bool = False) -> None:
        self._connection = connection
        self._own_rows_only = own_rows_only

    @classmethod
    async def connect(cls, url: str, *, own_rows_only: bool = False) -> RawPostgres:
        """Connect to ``url`` (a plain ``postgresql://`` URL) and create the staging table."""
        connection = await asyncpg.connect(
            url, server_settings={"application_name": "iftb-bench-raw", "timezone": "UTC"}
        )
        await connection.execute(PG_CREATE_STAGE)
        return cls(connection, own_rows_only=own_rows_only)

    async def ensure_partitions(self, first: datetime, last: datetime) -> int:
        """Create the monthly candle partitions ``[first, last]`` needs (migration 0004)."""
        created: int = await self._connection.fetchval(ENSURE_SPAN, first, last)
        return created

    async def server_version(self) -> str:
        return str(await self._connection.fetchval("SHOW server_version"))

    async def partitions(self) -> set[str]:
        """The names of the candle table's partitions."""
        rows = await self._connection.fetch(PARTITIONS)
        return {str(row[0]) for row in rows}

    async def drop_empty_partitions(self, names: Iterable[str]) -> list[str]:
        """Drop those of the partitions ``names`` that hold no candle and that this role may
        drop; returns the dropped."""
        dropped = []
        for name in sorted(names):  # names as PARTITIONS returns them: quoted by the server
            if await self._connection.fetchval(f"SELECT 1 FROM {name} LIMIT 1") is None:  # noqa: S608
                try:
                    await self._connection.execute(f"DROP TABLE {name}")
                except asyncpg.InsufficientPrivilegeError:
                    continue  # a DML-only role: the empty month stays (retention drops it)
                dropped.append(name)
        return dropped

    def candle_rows(self, rows: Iterable[NativeRow]) -> list[DriverRow]:
        return list(rows)

    async def clear_candles(self) -> None:
        if self._own_rows_only:
            await self._connection.execute(PG_DELETE_OWN, list(OWN_SYMBOLS))
        else:
            await self._connection.execute("TRUNCATE ohlcv")

    async def insert(self, rows: Sequence[DriverRow]) -> None:
        async with self._connection.transaction():
            await self._connection.copy_records_to_table(
                "ohlcv", records=rows, columns=NATIVE_COLUMNS
            )

    async def upsert(self, rows: Sequence[DriverRow]) -> None:
        async with self._connection.transaction():
            await self._connection.copy_records_to_table(
                PG_STAGE, records=rows, columns=NATIVE_COLUMNS
            )
            await self._connection.execute(PG_MERGE)

    async def load(self, rows: Iterable[NativeRow]) -> int:
        counted = _Counted(rows)
        async with self._connection.transaction():
            await self._connection.copy_records_to_table(
                "ohlcv", records=counted, columns=NATIVE_COLUMNS
            )
        return counted.count

    async def fetch_range(self, symbol: str, start: datetime, end: datetime) -> list[Any]:
        rows: list[Any] = await self._connection.fetch(
            PG_RANGE, symbol, EXCHANGE, TIMEFRAME, start, end
        )
        return rows

    async def stream_range(
        self, symbol: str, start: datetime, end: datetime, chunk_size: int
    ) -> AsyncIterator[Any]:
        async with self._connection.transaction():
            cursor = self._connection.cursor(
                PG_RANGE, symbol, EXCHANGE, TIMEFRAME, start, end, prefetch=chunk_size
            )
            async for row in cursor:
                yield row

    async def fetch_timestamps(self, symbol: str) -> list[datetime]:
        rows = await self._connection.fetch(PG_TIMESTAMPS, symbol, EXCHANGE, TIMEFRAME)
        return [row[0] for row in rows]

    async def digest(self) -> str:
        digest = hashlib.sha256()
        async with self._connection.transaction():
            async for row in self._connection.cursor(
                PG_OWN_CANDLES, list(OWN_SYMBOLS), prefetch=10_000
            ):
                digest.update(repr(tuple(row)).encode())
        return digest.hexdigest()

    async def load_trades(self, rows: Iterable[tuple[Any, ...]]) -> None:
        async with self._connection.transaction():
            await self._connection.copy_records_to_table(
                "trades", records=rows, columns=TRADE_COLUMNS
            )

    async def execute(self, sql: str) -> None:
        await self._connection.execute(sql)

    async def close(self) -> None:
        await self._connection.close()


class _Counted:
    """An iterable that counts what COPY took from it."""

    def __init__(self, rows: Iterable[NativeRow]) -> None:
        self._rows = rows
        self.count = 0

    def __iter__(self) -> Any:
        for row in self._rows:
            self.count += 1
            yield row
