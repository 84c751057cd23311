"""The raw SQLite side: stdlib ``sqlite3`` on the same database file, same pragmas.

Values are written in exactly the stored form the library's column types produce (decimal text
quantized to the column scale, fixed-width UTC timestamp text), computed from the schema itself,
so both sides store byte-identical rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import FromClause

from benchmarks.candles import EXCHANGE, TIMEFRAME, NativeRow
from benchmarks.raw_driver import DriverRow
from benchmarks.sql import (
    ALL_CANDLES,
    SQLITE_INSERT,
    SQLITE_INSERT_TRADE,
    SQLITE_RANGE,
    SQLITE_TIMESTAMPS,
    SQLITE_UPSERT,
    TRADE_COLUMNS,
)
from iftb.data.storage.engine import SQLITE_PRAGMAS
from iftb.data.storage.models import TradeModel
from iftb.data.storage.types import (
    ExactNumeric,
    UTCDateTime,
    datetime_to_sqlite_text,
    decimal_to_text,
)

_LOAD_CHUNK = 50_000

Converter = Callable[[Any], Any]


def stored_form(table: FromClause, columns: Sequence[str]) -> Callable[[Sequence[Any]], DriverRow]:
    """A function turning native values into what SQLite stores for ``columns`` of ``table``."""
    converters = [_converter(table.c[name].type) for name in columns]

    def convert(row: Sequence[Any]) -> DriverRow:
        return tuple(
            value if value is None else convert_value(value)
            for convert_value, value in zip(converters, row, strict=True)
        )

    return convert


def _converter(column_type: Any) -> Converter:
    if isinstance(column_type, ExactNumeric):
        quantum = None if column_type.scale is None else Decimal(1).scaleb(-column_type.scale)
        return lambda value: decimal_to_text(value, quantum)
    if isinstance(column_type, UTCDateTime):
        return datetime_to_sqlite_text
    return lambda value: value


_trade_form = stored_form(TradeModel.__table__, TRADE_COLUMNS)
_MONEY = Decimal("1e-8")


def candle_row(row: NativeRow) -> DriverRow:
    """A candle in its stored form, written out the way a hand-tuned raw caller would."""
    symbol, exchange, timeframe, timestamp, open_, high, low, close, volume, quote, trades = row
    return (
        symbol,
        exchange,
        timeframe,
        datetime_to_sqlite_text(timestamp),
        decimal_to_text(open_, _MONEY),
        decimal_to_text(high, _MONEY),
        decimal_to_text(low, _MONEY),
        decimal_to_text(close, _MONEY),
        decimal_to_text(volume, _MONEY),
        None if quote is None else decimal_to_text(quote, _MONEY),
        trades,
    )


def parsed_row(row: Sequence[Any]) -> NativeRow:
    """A stored candle row parsed back into Decimals and an aware datetime."""
    symbol, exchange, timeframe, timestamp, open_, high, low, close, volume, quote, trades = row
    return (
        symbol,
        exchange,
        timeframe,
        datetime.fromisoformat(timestamp).replace(tzinfo=UTC),
        Decimal(open_),
        Decimal(high),
        Decimal(low),
        Decimal(close),
        Decimal(volume),
        None if quote is None else Decimal(quote),
        trades,
    )


class RawSQLite:
    """Bare ``sqlite3``: autocommit connection, explicit ``BEGIN``/``COMMIT`` around writes."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None)
        for pragma, value in SQLITE_PRAGMAS.items():
            self._connection.execute(f"PRAGMA {pragma} = {value}")

    def candle_rows(self, rows: Iterable[NativeRow]) -> list[DriverRow]:
        return [candle_row(row) for row in rows]

    async def clear_candles(self) -> None:
        self._connection.execute("DELETE FROM ohlcv")

    async def insert(self, rows: Sequence[DriverRow]) -> None:
        self._write(SQLITE_INSERT, rows)

    async def upsert(self, rows: Sequence[DriverRow]) -> None:
        self._write(SQLITE_UPSERT, rows)

    async def load(self, rows: Iterable[NativeRow]) -> int:
        total = 0
        iterator = iter(rows)
        while chunk := self.candle_rows(islice(iterator, _LOAD_CHUNK)):
            self._write(SQLITE_INSERT, chunk)
            total += len(chunk)
        return total

    async def fetch_range(self, symbol: str, start: datetime, end: datetime) -> list[Any]:
        bounds = (datetime_to_sqlite_text(start), datetime_to_sqlite_text(end))
        cursor = self._connection.execute(SQLITE_RANGE, (symbol, EXCHANGE, TIMEFRAME, *bounds))
        return cursor.fetchall()

    async def stream_range(
        self, symbol: str, start: datetime, end: datetime, chunk_size: int
    ) -> AsyncIterator[Any]:
        bounds = (datetime_to_sqlite_text(start), datetime_to_sqlite_text(end))
        cursor = self._connection.execute(SQLITE_RANGE, (symbol, EXCHANGE, TIMEFRAME, *bounds))
        while chunk := cursor.fetchmany(chunk_size):
            for row in chunk:
                yield row

    async def fetch_timestamps(self, symbol: str) -> list[datetime]:
        cursor = self._connection.execute(SQLITE_TIMESTAMPS, (symbol, EXCHANGE, TIMEFRAME))
        return [datetime.fromisoformat(text).replace(tzinfo=UTC) for (text,) in cursor]

    async def digest(self) -> str:
        digest = hashlib.sha256()
        for row in self._connection.execute(ALL_CANDLES):
            digest.update(repr(row).encode())
        return digest.hexdigest()

    async def load_trades(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._write(SQLITE_INSERT_TRADE, [_trade_form(row) for row in rows])

    async def execute(self, sql: str) -> None:
        self._connection.executescript(sql)

    async def close(self) -> None:
        self._connection.close()

    def _write(self, sql: str, rows: Sequence[DriverRow]) -> None:
        self._connection.execute("BEGIN")
        try:
            self._connection.executemany(sql, rows)
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")
