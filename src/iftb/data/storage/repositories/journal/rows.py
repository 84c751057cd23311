"""Where the backends differ for journal rows: bulk writes, deleting a backtest run, and
serialising ledger writes.

Bulk writes take rows already checked by their records and send them the fastest way each
driver has: binary COPY on the session's own asyncpg connection (inside its transaction) on
PostgreSQL, one ``executemany`` of values in their stored form on SQLite. Values go through the
columns' own bind processing first, so what lands equals what an ORM insert would store.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import Dialect, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeEngine

from iftb.data.storage.advisory_locks import hold_locks
from iftb.data.storage.errors import translated_errors
from iftb.data.storage.models import BacktestRunModel, TradeModel
from iftb.data.storage.scopes import Scope
from iftb.data.storage.types import ExactNumeric, UTCDateTime, decimal_to_text

SQLITE_CHUNK = 5_000


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector over a synchronous bulk loop (no await inside), or over a
    whole bulk call that frees its rows before it ends (``record_history``: other tasks lose
    only cyclic collection for those seconds).

    The loop allocates hundreds of thousands of acyclic tuples while the caller's records are
    alive: each full collection then walks them all, for nothing (0.45 s of 2 s per 100k trades,
    measured), and so does the first one after the pause while they are still alive. Reference
    counting still frees everything; the collector resumes right after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def bulk_insert(
    connection: AsyncConnection,
    model: type[DeclarativeBase],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    defaults: Mapping[str, Any] | None = None,
) -> int:
    """Insert ``rows`` (each a value per name of ``columns``, from validated records) in one
    bulk call; their count. A None in a column of ``defaults`` takes its default, as the server
    default would for a value an ORM insert leaves out."""
    with cycle_collector_paused():
        values = dict(zip(columns, map(list, zip(*rows, strict=True)), strict=False))
        if not values:
            return 0
        for name, default in (defaults or {}).items():
            values[name] = [default if value is None else value for value in values[name]]
    return await bulk_insert_columns(connection, model, values)


async def bulk_insert_columns(
    connection: AsyncConnection, model: type[DeclarativeBase], columns: Mapping[str, list[Any]]
) -> int:
    """Insert rows given column by column (``columns``: a list of values per column name, one
    per row, from validated records) in one bulk call; their count. Converted a column at a
    time: the per-row loop cost as much as the converters."""
    dialect = connection.dialect
    table: Table = model.__table__  # type: ignore[assignment]
    with cycle_collector_paused():
        converted = [
            _converted(table.c[name].type, dialect, values) for name, values in columns.items()
        ]
        records = list(zip(*converted, strict=True))
    with translated_errors():
        if dialect.name == "postgresql":
            driver: Any = (await connection.get_raw_connection()).driver_connection
            await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
        else:
            names = ", ".join(f'"{name}"' for name in columns)
            marks = ", ".join("?" * len(columns))
            statement = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'
            for start in range(0, len(records), SQLITE_CHUNK):
                await connection.exec_driver_sql(statement, records[start : start + SQLITE_CHUNK])
    return len(records)


def _converted(column_type: TypeEngine[Any], dialect: Dialect, values: list[Any]) -> list[Any]:
    """A column's values as the driver takes them."""
    convert = _converter(column_type, dialect)
    if convert is None:
        return values
    if dialect.name == "sqlite":
        texts = _stored_texts(column_type, values)
        if texts is not None:
            return texts
    return list(map(convert, values))


def _stored_texts(column_type: TypeEngine[Any], values: list[Any]) -> list[str] | None:
    """SQLite's stored text of a column of nothing but Decimals, or UTC datetimes, made at C
    speed (``map`` of ``format`` or ``isoformat``: no Python call per value), the same text the
    converters give value by value (``_decimal_text``, ``_sqlite_time``); None for any other
    column, converted value by value."""
    kinds = set(map(type, values))
    if isinstance(column_type, ExactNumeric) and column_type.scale is not None:
        if kinds != {Decimal}:
            return None
        spec = f".{column_type.scale}f"
        texts = list(map(format, values, repeat(spec)))
        negative_zero = "-" + format(Decimal(0), spec)  # PostgreSQL's NUMERIC has none
        if negative_zero in texts:
            return [text[1:] if text == negative_zero else text for text in texts]
        return texts
    if isinstance(column_type, UTCDateTime) and kinds == {datetime}:
        if set(map(_ZONE, values)) != {UTC}:
            return None
        stamps = map(datetime.isoformat, values, repeat(" "), repeat("microseconds"))
        return list(map(_STORED_TIME, stamps))
    return None


_ZONE = attrgetter("tzinfo")
_STORED_TIME = itemgetter(slice(0, 26))
"""A UTC time's ``isoformat(" ", "microseconds")`` without its offset: the stored text."""


def _converter(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """What turns a validated record's value into the driver's (None kept): the dialect's own
    bind processing of the type (an exact decimal's and a time's text on SQLite, a document's
    JSON), none where asyncpg takes the value as it is (Decimal, aware datetime). Exact
    decimals and times on SQLite skip the type's layers, with the same result."""
    if isinstance(column_type, ExactNumeric | UTCDateTime):
        if dialect.name == "postgresql":
            return None
        if isinstance(column_type, ExactNumeric):
            scale = column_type.scale
            quantum = None if scale is None else Decimal(1).scaleb(-scale)
            return functools.partial(_decimal_text, f".{scale}f", quantum)
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    if isinstance(column_type, UTCDateTime):
        return functools.partial(_sqlite_time, process)
    return functools.partial(_kept_none, process)


def _decimal_text(spec: str, quantum: Decimal | None, value: Any) -> Any:
    """``decimal_to_text``'s result, a Decimal formatted at the column's scale in one step
    (a third cheaper; the same rounding, and no negative zero either)."""
    if type(value) is not Decimal or quantum is None:
        return None if value is None else decimal_to_text(value, quantum)
    text = format(value, spec)
    return text[1:] if text[0] == "-" and not text.strip("-0.") else text


def _sqlite_time(process: Callable[[Any], Any], value: Any) -> Any:
    """A UTC time's stored text directly (``UTCDateTime``'s and DATETIME's processing give the
    same); any other value through them."""
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return value.isoformat(" ", "microseconds")[:26]
    return None if value is None else process(value)


def _kept_none(process: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else process(value)


async def delete_run(connection: AsyncConnection, run_id: int) -> int | None:
    """Delete a backtest run and, by the cascade, every journal row of it; the number of its
    trades, or None when there is no such run. On PostgreSQL through
    ``iftb_delete_backtest_run``, so the bot role deletes backtest rows and nothing else."""
    with translated_errors():
        if connection.dialect.name == "postgresql":
            result = await connection.execute(select(func.iftb_delete_backtest_run(run_id)))
            deleted = result.scalar_one()
            return None if deleted is None else int(deleted)
        trades = await connection.execute(
            select(func.count()).select_from(TradeModel).where(TradeModel.run_id == run_id)
        )
        count = int(trades.scalar_one())
        gone = await connection.execute(
            delete(BacktestRunModel).where(BacktestRunModel.id == run_id)
        )
        return count if gone.rowcount else None


async def lock_ledger(
    connection: AsyncConnection, scope: Scope, exchange: str, symbol: str
) -> None:
    """Serialise the ledger writes of one symbol of a scope until the transaction ends, so two
    processes recording the same fills agree (``advisory_locks``)."""
    await hold_locks(connection, exclusive=[f"iftb-ledger:{scope}:{exchange}:{symbol}"])
