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

from benchmarks.candles import EXCHANGE, TIMEFRAME, NativeRow
from benchmarks.raw_driver import DriverRow
from benchmarks.sql import (
    ALL_CANDLES,
    PG_CREATE_STAGE,
    PG_MERGE,
    PG_RANGE,
    PG_STAGE,
    PG_TIMESTAMPS,
    TRADE_COLUMNS,
)
from iftb.data.storage.repositories.candle_io import COLUMNS

ENSURE_SPAN = (
    "SELECT iftb_ensure_ohlcv_partitions(ARRAY(SELECT generate_series($1::timestamptz, $2, "
    "interval '1 day')) || $2::timestamptz)"
)
"""Every partition from $1 to $2: the function takes open times, and a day lies in one unit."""


class RawPostgres:
    """Bare asyncpg, session time zone UTC like the library's connections."""

    backend = "postgresql"

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, url: str) -> RawPostgres:
        """Connect to ``url`` (a plain ``postgresql://`` URL) and create the staging table."""
        connection = await asyncpg.connect(
            url, server_settings={"application_name": "iftb-bench-raw", "timezone": "UTC"}
        )
        await connection.execute(PG_CREATE_STAGE)
        return cls(connection)

    async def ensure_partitions(self, first: datetime, last: datetime) -> int:
        """Create the monthly candle partitions ``[first, last]`` needs (migration 0004)."""
        created: int = await self._connection.fetchval(ENSURE_SPAN, first, last)
        return created

    def candle_rows(self, rows: Iterable[NativeRow]) -> list[DriverRow]:
        return list(rows)

    async def clear_candles(self) -> None:
        await self._connection.execute("TRUNCATE ohlcv")

    async def insert(self, rows: Sequence[DriverRow]) -> None:
        async with self._connection.transaction():
            await self._connection.copy_records_to_table("ohlcv", records=rows, columns=COLUMNS)

    async def upsert(self, rows: Sequence[DriverRow]) -> None:
        async with self._connection.transaction():
            await self._connection.copy_records_to_table(PG_STAGE, records=rows, columns=COLUMNS)
            await self._connection.execute(PG_MERGE)

    async def load(self, rows: Iterable[NativeRow]) -> int:
        counted = _Counted(rows)
        async with self._connection.transaction():
            await self._connection.copy_records_to_table("ohlcv", records=counted, columns=COLUMNS)
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
            async for row in self._connection.cursor(ALL_CANDLES, prefetch=10_000):
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
