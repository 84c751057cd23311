"""Candles as DataFrames (pandas or Polars), read without a Python object per value.

pandas, Polars and pyarrow are the optional ``frames`` extra: nothing here imports them until a
frame is asked for, and a missing one is a ``FramesUnavailableError`` naming the extra.

Reads ask the database for the candles as CSV text and let pyarrow's multithreaded parser build
the columns: on PostgreSQL ``COPY (query) TO STDOUT (FORMAT csv)`` on the session's own asyncpg
connection (inside its unit of work; the query's values are bound parameters), on SQLite one
``group_concat`` of the rows per chunk on the session's own aiosqlite connection (SQLite builds the
text in C). Both backends hold candle values as exact decimal text (PostgreSQL's NUMERIC output,
SQLite's stored text), so the same bytes become float64 columns (correctly rounded: each value
equals ``float(Decimal(text))``) or, with ``exact=True``, Arrow ``decimal128(20, 8)`` columns
holding every digit. The text arrives in blocks of about ``BLOCK_BYTES`` and is parsed block by
block, so the transient memory stays a few MB above the frame's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage.errors import StorageError, ValidationError
from iftb.data.storage.repositories.market.candle_io import VALUE_COLUMNS
from iftb.data.storage.types import datetime_to_sqlite_text

Library = Literal["pandas", "polars"]
LIBRARIES: tuple[str, ...] = ("pandas", "polars")
FRAME_COLUMNS = VALUE_COLUMNS
"""open, high, low, close, volume, quote_volume, trades_count (beside the open time)."""
DECIMAL_COLUMNS = VALUE_COLUMNS[:-1]
PRECISION, SCALE = 20, 8
"""NUMERIC(20, 8): the candle columns' type, and the exact frames' decimal128."""
BLOCK_BYTES = 8 << 20
SQLITE_CHUNK_ROWS = 100_000
EXTRA = "pip install 'iftb[frames]'"


class FramesUnavailableError(StorageError):
    """pandas, Polars or pyarrow is not installed (the optional ``frames`` extra)."""


def require(module: str) -> Any:
    """Import ``module`` of the frames extra, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".", 1)[0]
        raise FramesUnavailableError(
            f"DataFrames need {top}, which is not installed: {EXTRA}"
        ) from None


def checked_library(library: str) -> Library:
    if library == "pandas":
        return "pandas"
    if library == "polars":
        return "polars"
    raise ValidationError(
        f"library: {library!r} is not one of {', '.join(LIBRARIES)}", field="library"
    )


# --- the queries ---------------------------------------------------------------------------

_SERIES = 'symbol = {} AND exchange = {} AND timeframe = {} AND price_type = {} AND "timestamp"'
_PG_QUERY = (
    'SELECT (extract(epoch FROM "timestamp") * 1000000)::int8, '
    + ", ".join(f'"{name}"' for name in VALUE_COLUMNS)
    + " FROM ohlcv WHERE "
    + _SERIES.format("$1", "$2", "$3", "$4")
    + ' BETWEEN $5 AND $6 ORDER BY "timestamp"'
)
_SQLITE_LINE = " || ',' || ".join(
    ['"timestamp"', *(f"ifnull(\"{name}\", '')" for name in VALUE_COLUMNS)]
)
_SQLITE_QUERY = (
    "SELECT count(*), max(ts), group_concat(line, char(10)) FROM ("
    f'SELECT "timestamp" AS ts, {_SQLITE_LINE} AS line FROM ohlcv WHERE '
    + _SERIES.format("?", "?", "?", "?")
    + ' >= ? AND "timestamp" <= ? ORDER BY "timestamp" LIMIT ?)'
)
_SQLITE_NEXT = _SQLITE_QUERY.replace('"timestamp" >= ?', '"timestamp" > ?')


@dataclasses.dataclass(frozen=True)
class Series:
    """One series' candles opening in ``[start, end]`` (aware UTC; already checked)."""

    symbol: str
    exchange: str
    timeframe: str
    price_type: str
    start: datetime
    end: datetime


async def read_candle_frame(
    connection: AsyncConnection, dialect: str, series: Series, *, library: Library, exact: bool
) -> Any:
    """The candles of ``series`` as a ``library`` frame (see the module docstring)."""
    pa = require("pyarrow")
    require(library)
    reader = _read_sqlite if dialect == "sqlite" else _read_postgres
    parse = _csv_parser(exact, timestamp_text=dialect == "sqlite")
    tables = await reader(connection, series, parse)
    table = pa.concat_tables(tables) if tables else _empty_table(exact)
    return to_frame(_finished(table, exact), library)


async def _read_postgres(
    connection: AsyncConnection, series: Series, parse: Callable[[bytes], Any]
) -> list[Any]:
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    blocks = _Blocks(parse)
    await driver.copy_from_query(
        _PG_QUERY,
        series.symbol,
        series.exchange,
        series.timeframe,
        series.price_type,
        series.start,
        series.end,
        output=blocks.feed,
        format="csv",
    )
    return blocks.finish()


async def _read_sqlite(
    connection: AsyncConnection, series: Series, parse: Callable[[bytes], Any]
) -> list[Any]:
    """Chunk after chunk in one index range scan each (keyset: after the last candle read);
    each chunk's text is parsed in a worker thread while SQLite builds the next one (both
    release the GIL)."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    key = (series.symbol, series.exchange, series.timeframe, series.price_type)
    query, after = _SQLITE_QUERY, datetime_to_sqlite_text(series.start)
    end = datetime_to_sqlite_text(series.end)
    parsing: list[asyncio.Future[Any]] = []
    try:
        while True:
            cursor = await driver.execute(query, (*key, after, end, SQLITE_CHUNK_ROWS))
            count, last, text = await cursor.fetchone()
            await cursor.close()
            if count:
                parsing.append(asyncio.ensure_future(asyncio.to_thread(parse, text.encode())))
            if count < SQLITE_CHUNK_ROWS:
                break
            query, after = _SQLITE_NEXT, last
    finally:
        tables = list(await asyncio.gather(*parsing))
    return tables


class _Blocks:
    """COPY output in blocks of whole lines, each parsed once it reaches ``BLOCK_BYTES``."""

    def __init__(self, parse: Callable[[bytes], Any]) -> None:
        self._parse = parse
        self._pending = bytearray()
        self._tables: list[Any] = []

    async def feed(self, chunk: bytes) -> None:
        self._pending += chunk
        if len(self._pending) >= BLOCK_BYTES:
            cut = self._pending.rfind(b"\n") + 1
            self._tables.append(self._parse(bytes(self._pending[:cut])))
            del self._pending[:cut]

    def finish(self) -> list[Any]:
        if self._pending:
            self._tables.append(self._parse(bytes(self._pending)))
            self._pending.clear()
        return self._tables


def _csv_parser(exact: bool, *, timestamp_text: bool) -> Callable[[bytes], Any]:
    pa, csv = require("pyarrow"), require("pyarrow.csv")
    value = pa.decimal128(PRECISION, SCALE) if exact else pa.float64()
    types = {"timestamp": pa.timestamp("us") if timestamp_text else pa.int64()}
    types |= dict.fromkeys(DECIMAL_COLUMNS, value) | {"trades_count": pa.int64()}
    read = csv.ReadOptions(column_names=["timestamp", *VALUE_COLUMNS], block_size=BLOCK_BYTES)
    convert = csv.ConvertOptions(column_types=types, quoted_strings_can_be_null=False)

    def parse(text: bytes) -> Any:
        return csv.read_csv(pa.py_buffer(text), read_options=read, convert_options=convert)

    return parse


def _schema(exact: bool) -> Any:
    pa = require("pyarrow")
    value = pa.decimal128(PRECISION, SCALE) if exact else pa.float64()
    fields = [pa.field("timestamp", pa.timestamp("us", tz="UTC"))]
    fields += [pa.field(name, value) for name in DECIMAL_COLUMNS]
    return pa.schema([*fields, pa.field("trades_count", pa.int64())])


def _empty_table(exact: bool) -> Any:
    return _schema(exact).empty_table()


def _finished(table: Any, exact: bool) -> Any:
    """The parsed table with its open times as aware UTC timestamps, in read order."""
    pa = require("pyarrow")
    stamps = table.column("timestamp")
    target = pa.timestamp("us", tz="UTC")
    if stamps.type != target:
        # int64 microseconds (PostgreSQL) or naive UTC text (SQLite): both are UTC already
        naive = stamps if pa.types.is_timestamp(stamps.type) else stamps.cast(pa.timestamp("us"))
        stamps = naive.cast(target)
    return table.set_column(0, "timestamp", stamps).cast(_schema(exact))


def to_frame(table: Any, library: Library) -> Any:
    """An Arrow table of candles (``timestamp`` first) as the ``library``'s frame."""
    if library == "polars":
        pl = require("polars")
        frame = pl.from_arrow(table, rechunk=True)
        return frame.set_sorted("timestamp")
    pd, pa = require("pandas"), require("pyarrow")

    def dtype(kind: Any) -> Any:
        if pa.types.is_decimal(kind):
            return pd.ArrowDtype(kind)
        if pa.types.is_integer(kind):
            return pd.Int64Dtype()
        return None

    stamps = table.column("timestamp").cast(pa.timestamp("us")).to_numpy()
    frame = table.drop_columns(["timestamp"]).to_pandas(
        types_mapper=dtype, split_blocks=True, self_destruct=True
    )
    index = pd.DatetimeIndex(stamps, name="timestamp").tz_localize("UTC")
    frame.index = index
    return frame


# --- small record lists (trades, funding rates, the equity curve) ---------------------------


def records_frame(
    records: Iterable[Any],
    *,
    columns: Sequence[str] | None = None,
    library: str = "pandas",
    exact: bool = False,
    index: str | None = None,
) -> Any:
    """A frame of a few records (dataclasses, or tuples named by ``columns``): Decimals as
    float64 (or exact Arrow decimals with ``exact=True``), datetimes as aware UTC timestamps.
    ``index`` names the pandas index column (Polars keeps it as a column, sorted by it)."""
    chosen = checked_library(library)
    pa = require("pyarrow")
    require(chosen)
    rows = list(records)
    names = list(columns) if columns is not None else _field_names(rows)
    values = [_row_values(row, names) for row in rows]
    arrays = {
        name: _column_array(pa, [row[position] for row in values], exact)
        for position, name in enumerate(names)
    }
    table = pa.table(arrays) if names else pa.table({})
    if chosen == "polars":
        pl = require("polars")
        frame = pl.from_arrow(table)
        return frame.sort(index) if index else frame
    pd = require("pandas")
    frame = table.to_pandas(
        types_mapper=lambda kind: pd.ArrowDtype(kind) if pa.types.is_decimal(kind) else None
    )
    return frame.set_index(index) if index else frame


def _field_names(rows: list[Any]) -> list[str]:
    if not rows:
        return []
    first = rows[0]
    if dataclasses.is_dataclass(first):
        return [field.name for field in dataclasses.fields(first)]
    raise TypeError("records_frame: name the columns of tuple records (columns=...)")


def _row_values(row: Any, names: list[str]) -> tuple[Any, ...]:
    if dataclasses.is_dataclass(row):
        return tuple(getattr(row, name) for name in names)
    return tuple(row)


def _column_array(pa: Any, values: list[Any], exact: bool) -> Any:
    present = [value for value in values if value is not None]
    if present and all(isinstance(value, Decimal) for value in present):
        if exact:
            return pa.array(values, type=pa.decimal128(38, _scale(present)))
        return pa.array([None if value is None else float(value) for value in values])
    if present and all(isinstance(value, datetime) for value in present):
        return pa.array(values, type=pa.timestamp("us", tz="UTC"))
    if present and all(type(value) is date for value in present):
        return pa.array(values, type=pa.date32())
    if present and all(isinstance(value, str) for value in present):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # JSON documents and other mixed values
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _scale(values: list[Decimal]) -> int:
    """The decimal places a decimal128 column needs to hold every value exactly."""
    exponents = [value.as_tuple().exponent for value in values]
    return max([0, *(-e for e in exponents if isinstance(e, int) and e < 0)])
