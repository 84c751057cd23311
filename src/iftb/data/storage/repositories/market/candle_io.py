"""Candle rows on the hot paths: the one place where the two backends differ in how rows travel.

Writes: PostgreSQL gets binary COPY on the session's own asyncpg connection (inside its
transaction), once the months the batch's candles fall in have partitions; an upsert copies into a
per-connection staging table, then merges with one ``INSERT ... SELECT ... ON CONFLICT DO
UPDATE``. SQLite gets one ``executemany`` per chunk of
values already in their stored form (``types``).

Reads: the selected columns skip SQLAlchemy's per-value type processing (``raw_columns``) and
``bar_from_raw`` builds the record directly — Decimals and aware UTC datetimes from asyncpg's
native values, or from SQLite's stored text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import ColumnElement, String, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.records import OHLCVBar
from iftb.data.storage.repositories.market.candle_partitions import ensure_partitions_for
from iftb.data.storage.types import datetime_to_sqlite_text, decimal_to_text

KEY_COLUMNS = ("symbol", "exchange", "timeframe", "price_type", "timestamp")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "trades_count")
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS

_COLUMN_LIST = ", ".join(f'"{name}"' for name in COLUMNS)
_KEY_LIST = ", ".join(f'"{name}"' for name in KEY_COLUMNS)
_UPDATE_SET = ", ".join(f'"{name}" = excluded."{name}"' for name in VALUE_COLUMNS)
_ON_CONFLICT = f"ON CONFLICT ({_KEY_LIST}) DO UPDATE SET {_UPDATE_SET}"

SQLITE_CHUNK = 10_000
_MONEY_QUANTUM = Decimal("1e-8")


class CandleWriter(Protocol):
    async def insert(self, connection: AsyncConnection, bars: Sequence[OHLCVBar]) -> None: ...

    async def upsert(self, connection: AsyncConnection, bars: Sequence[OHLCVBar]) -> None: ...


def candle_writer(dialect: str) -> CandleWriter:
    """The bulk strategy for a dialect."""
    return _SQLiteWriter() if dialect == "sqlite" else _PostgresWriter()


class _PostgresWriter:
    _STAGE = "iftb_ohlcv_stage"

    async def insert(self, connection: AsyncConnection, bars: Sequence[OHLCVBar]) -> None:
        driver = await _partitioned_for(connection, bars)
        await driver.copy_records_to_table("ohlcv", records=_tuples(bars), columns=COLUMNS)

    async def upsert(self, connection: AsyncConnection, bars: Sequence[OHLCVBar]) -> None:
        driver = await _partitioned_for(connection, bars)
        # A temporary table lives as long as the connection: created once, emptied per use.
        await driver.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self._STAGE} ON COMMIT DELETE ROWS AS "
            f"SELECT {_COLUMN_LIST} FROM ohlcv WITH NO DATA; TRUNCATE {self._STAGE}"
        )
        await driver.copy_records_to_table(self._STAGE, records=_tuples(bars), columns=COLUMNS)
        await driver.execute(
            f"INSERT INTO ohlcv ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {self._STAGE} "
            f"ORDER BY {_KEY_LIST} {_ON_CONFLICT}"
        )


class _SQLiteWriter:
    _INSERT = f"INSERT INTO ohlcv ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(COLUMNS))})"

    async def insert(self, connection: AsyncConnection, bars: Sequence[OHLCVBar]) -> None:
        await self._write(connection, self._INSERT, bars)

    async def upsert(self, connection: AsyncConnection, bars: Sequence[OHLCVBar]) -> None:
        await self._write(connection, f"{self._INSERT} {_ON_CONFLICT}", bars)

    async def _write(self, connection: AsyncConnection, sql: str, bars: Sequence[OHLCVBar]) -> None:
        for start in range(0, len(bars), SQLITE_CHUNK):
            rows = [_sqlite_row(bar) for bar in bars[start : start + SQLITE_CHUNK]]
            await connection.exec_driver_sql(sql, rows)


def _tuples(bars: Iterable[OHLCVBar]) -> Iterable[tuple[Any, ...]]:
    return (
        (
            bar.symbol,
            bar.exchange,
            bar.timeframe,
            bar.price_type,
            bar.timestamp,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.quote_volume,
            bar.trades_count,
        )
        for bar in bars
    )


def _sqlite_row(bar: OHLCVBar) -> tuple[Any, ...]:
    """A candle in SQLite's stored form (the same the column types produce)."""
    quote_volume = bar.quote_volume
    return (
        bar.symbol,
        bar.exchange,
        bar.timeframe,
        bar.price_type,
        datetime_to_sqlite_text(bar.timestamp),
        decimal_to_text(bar.open, _MONEY_QUANTUM),
        decimal_to_text(bar.high, _MONEY_QUANTUM),
        decimal_to_text(bar.low, _MONEY_QUANTUM),
        decimal_to_text(bar.close, _MONEY_QUANTUM),
        decimal_to_text(bar.volume, _MONEY_QUANTUM),
        None if quote_volume is None else decimal_to_text(quote_volume, _MONEY_QUANTUM),
        bar.trades_count,
    )


async def _partitioned_for(connection: AsyncConnection, bars: Sequence[OHLCVBar]) -> Any:
    """The asyncpg connection under the session's (same transaction), once every month that
    holds a candle of the batch has its partition: no write may fail for want of one."""
    await ensure_partitions_for(connection, (bar.timestamp for bar in bars))
    raw = await connection.get_raw_connection()
    return raw.driver_connection


# --- reads --------------------------------------------------------------------------------

RawRow = Sequence[Any]


def raw_columns() -> list[ColumnElement[Any]]:
    """The candle columns as the driver returns them, without per-value type processing."""
    table = OHLCVModel.__table__.c
    return [type_coerce(table[name], String).label(name) for name in COLUMNS]


def bar_reader(dialect: str) -> Callable[[RawRow], OHLCVBar]:
    """Builds trusted records from raw rows of ``raw_columns()`` on ``dialect``."""
    return _bar_from_sqlite if dialect == "sqlite" else _bar_from_asyncpg


def _bar_from_asyncpg(row: RawRow) -> OHLCVBar:
    # asyncpg already gives Decimals and UTC-aware datetimes for NUMERIC and TIMESTAMPTZ.
    return _trusted_bar(row)


def _bar_from_sqlite(row: RawRow) -> OHLCVBar:
    (
        symbol,
        exchange,
        timeframe,
        price_type,
        timestamp,
        open_,
        high,
        low,
        close,
        volume,
        quote,
        trades,
    ) = row
    return _trusted_bar(
        (
            symbol,
            exchange,
            timeframe,
            price_type,
            datetime.fromisoformat(timestamp).replace(tzinfo=UTC),
            Decimal(open_),
            Decimal(high),
            Decimal(low),
            Decimal(close),
            Decimal(volume),
            None if quote is None else Decimal(quote),
            trades,
        )
    )


# The slot descriptors set fields directly: the fastest way to fill a frozen slotted record.
_SLOT_SETTERS = tuple(getattr(OHLCVBar, name).__set__ for name in COLUMNS)


def _trusted_bar(values: RawRow) -> OHLCVBar:
    """An OHLCVBar from stored values, without re-validating (the database holds valid rows)."""
    bar = object.__new__(OHLCVBar)
    for set_slot, value in zip(_SLOT_SETTERS, values, strict=True):
        set_slot(bar, value)
    return bar
