"""A DataFrame of candles written through the rules and the bulk path of ``upsert_many``.

The frame is checked whole before anything is sent. Frame-level rules first (the columns are
there, the open times are aware, increasing and distinct), then every candle against
``OHLCVBar``'s rules. A float64 frame is checked with array operations: any row they cannot
clear for certain (a non-finite value, a value that may have more than 8 decimal places or is
too large to decide in float arithmetic, low above open or close, a candle off its boundary or
possibly in the future, …) is built as a real ``OHLCVBar``, so the error raised is the record's
own, located at the row's position and open time. Floats become decimals by their shortest
repr (``str(float)``), never by their binary expansion: a float clears the array check only
when its shortest repr has at most 8 decimal places and fits an int64 at scale 8, and then that
repr's scaled integer is ``rint(value × 10⁸)`` exactly. Other columns (exact decimal128 or
Decimal objects, from ``get_frame(exact=True)``) are built row by row as records.

The values travel as Arrow ``decimal128(20, 8)`` columns, then exactly as ``upsert_many``'s do:
on SQLite in their stored text form by one ``executemany`` per chunk with the same
``ON CONFLICT DO UPDATE``; on PostgreSQL copied (CSV COPY, numbers as exact decimal text) into
a per-connection staging table on the session's own asyncpg connection, once the partitions
exist, then merged with one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` in key order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import repeat
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage.enums import PriceType
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.records import OHLCVBar
from iftb.data.storage.repositories.market.candle_frames import (
    DECIMAL_COLUMNS,
    PRECISION,
    SCALE,
    require,
)
from iftb.data.storage.repositories.market.candle_io import (
    COLUMNS,
    KEY_COLUMNS,
    SQLITE_CHUNK,
    VALUE_COLUMNS,
    candle_writer,
)
from iftb.data.storage.repositories.market.candle_partitions import ensure_partitions_for
from iftb.data.storage.repositories.market.candle_sql import PRICE_TYPE, SeriesKey
from iftb.data.storage.repositories.market.catalog_upkeep import Span, spans_of
from iftb.data.storage.timeframes import EPOCH, parse_timeframe
from iftb.data.storage.validation import LATEST, candle_opened_rule

REQUIRED = ("open", "high", "low", "close", "volume")
OPTIONAL = ("quote_volume", "trades_count")
_SAFE = float(2**25)
"""Below this, a float's half-ulp is under half of 10⁻⁸: rounding at scale 8 is exact."""
_INT_MAX = 2**31 - 1
_US = 1_000_000
_LIMB = 2**64 - 1
_COLUMN_LIST = ", ".join(f'"{name}"' for name in COLUMNS)
_KEY_LIST = ", ".join(f'"{name}"' for name in KEY_COLUMNS)
_ON_CONFLICT = f"ON CONFLICT ({_KEY_LIST}) DO UPDATE SET " + ", ".join(
    f'"{name}" = excluded."{name}"' for name in VALUE_COLUMNS
)
_SQLITE_UPSERT = (
    f"INSERT INTO ohlcv ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(COLUMNS))}) {_ON_CONFLICT}"
)
_STAGE = "iftb_frame_stage"
_STAGE_VALUES = ", ".join(f'"{name}"' for name in VALUE_COLUMNS)
_PG_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (us int8, "
    + ", ".join(f'"{name}" numeric' for name in DECIMAL_COLUMNS)
    + ', "trades_count" int4) ON COMMIT DELETE ROWS; '
    + f"TRUNCATE {_STAGE}"
)
_PG_MERGE = (
    f"INSERT INTO ohlcv ({_COLUMN_LIST}) SELECT $1, $2, $3, $4, "
    f"timestamptz 'epoch' + us * interval '1 microsecond', {_STAGE_VALUES} FROM {_STAGE} "
    f"ORDER BY us {_ON_CONFLICT}"
)


@dataclass
class _Columns:
    """The frame's open times (int64 µs since the epoch, UTC) and value columns: float64
    arrays, or lists of Decimals / ints / None when the frame holds exact values."""

    stamps: Any
    values: dict[str, Any]


class FrameBatch:
    """A checked frame, ready to write in the caller's unit of work."""

    def __init__(
        self, key: SeriesKey, stamps: Any, arrays: dict[str, Any] | None, bars: list[OHLCVBar]
    ):
        self._key, self._stamps, self._arrays, self._bars = key, stamps, arrays, bars

    def spans(self) -> dict[SeriesKey, Span]:
        """The span of open times the frame writes (its times are sorted)."""
        if self._arrays is None:
            return spans_of(self._bars)
        if len(self._stamps) == 0:
            return {}
        return {self._key: (_moment(self._stamps[0]), _moment(self._stamps[-1]))}

    async def write(self, connection: AsyncConnection, dialect: str) -> int:
        """Write every candle; returns how many."""
        if self._arrays is None:
            if self._bars:
                await candle_writer(dialect).upsert(connection, self._bars)
            return len(self._bars)
        if len(self._stamps) == 0:
            return 0
        if dialect == "sqlite":
            await self._write_sqlite(connection)
        else:
            await self._write_postgres(connection)
        return len(self._stamps)

    async def _write_sqlite(self, connection: AsyncConnection) -> None:
        pa, pc = require("pyarrow"), require("pyarrow.compute")
        assert self._arrays is not None
        stamps = pa.array(self._stamps.view("datetime64[us]"))
        texts = [pc.strftime(stamps, "%Y-%m-%d %H:%M:%S", "C").to_pylist()]
        texts += [pc.cast(self._arrays[name], pa.string()).to_pylist() for name in DECIMAL_COLUMNS]
        texts.append(self._arrays["trades_count"].to_pylist())
        key = self._key
        rows = list(
            zip(
                repeat(key.symbol),
                repeat(key.exchange),
                repeat(key.timeframe),
                repeat(key.price_type),
                *texts,
                strict=False,
            )
        )
        for start in range(0, len(rows), SQLITE_CHUNK):
            await connection.exec_driver_sql(_SQLITE_UPSERT, rows[start : start + SQLITE_CHUNK])

    async def _write_postgres(self, connection: AsyncConnection) -> None:
        pa, csv = require("pyarrow"), require("pyarrow.csv")
        assert self._arrays is not None
        days = sorted({int(day) for day in set((self._stamps // (86_400 * _US)).tolist())})
        await ensure_partitions_for(
            connection, (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in days)
        )
        table = pa.table({"us": pa.array(self._stamps), **self._arrays})
        sink = io.BytesIO()
        csv.write_csv(table, sink, csv.WriteOptions(include_header=False))
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.execute(_PG_STAGE)
        sink.seek(0)
        await driver.copy_to_table(_STAGE, source=sink, format="csv")
        key = self._key
        await driver.execute(_PG_MERGE, key.symbol, key.exchange, key.timeframe, key.price_type)


def frame_batch(
    frame: Any, symbol: str, timeframe: str, exchange: str, price_type: str
) -> FrameBatch:
    """Check ``frame`` whole (see the module docstring); nothing is sent yet."""
    np = require("numpy")
    key = SeriesKey(symbol, exchange, parse_timeframe(timeframe).code, PRICE_TYPE(price_type).value)
    columns = _columns(frame)
    stamps = columns.stamps
    _check_order(np, stamps, key)
    rows = _RowBuilder(key, columns)
    floats = all(
        isinstance(columns.values[name], np.ndarray) and columns.values[name].dtype == np.float64
        for name in VALUE_COLUMNS
    )
    if not floats:
        return FrameBatch(key, stamps, None, [rows.bar(index) for index in range(len(stamps))])
    return FrameBatch(key, stamps, _checked_arrays(np, key, columns, rows), [])


def _columns(frame: Any) -> _Columns:
    """Open times and value columns of a pandas or Polars frame."""
    module = type(frame).__module__.split(".", 1)[0]
    if module == "pandas":
        return _pandas_columns(frame)
    if module == "polars":
        return _polars_columns(frame)
    raise ValidationError(
        f"frame: expected a pandas or Polars DataFrame, got {type(frame).__name__}", field="frame"
    )


def _missing(names: Sequence[str], present: Sequence[str]) -> None:
    for name in REQUIRED:
        if name not in names:
            raise ValidationError(
                f"{name}: the frame has no {name} column (it has {', '.join(present) or 'none'})",
                field=name,
            )


def _naive(where: str) -> ValidationError:
    return ValidationError(
        f"timestamp: {where} holds naive open times (timezone-aware UTC required)",
        field="timestamp",
    )


def _pandas_columns(frame: Any) -> _Columns:
    pd, np = require("pandas"), require("numpy")
    names = [str(name) for name in frame.columns]
    _missing(names, names)
    if isinstance(frame.index, pd.DatetimeIndex):
        times, where = frame.index, "the index"
    elif "timestamp" in names:
        times, where = pd.DatetimeIndex(frame["timestamp"]), "the timestamp column"
    else:
        raise ValidationError(
            "timestamp: the frame is not indexed by open time (a DatetimeIndex) and has no "
            "timestamp column",
            field="timestamp",
        )
    if times.tz is None:
        raise _naive(where)
    if times.hasnans:
        raise ValidationError(
            f"timestamp: row {int(np.flatnonzero(times.isna())[0])} has no open time",
            field="timestamp",
        )
    stamps = np.asarray(times.tz_convert("UTC").as_unit("us").asi8, dtype=np.int64)
    values: dict[str, Any] = {}
    for name in VALUE_COLUMNS:
        if name not in names:
            values[name] = np.full(len(frame), np.nan)
            continue
        column = frame[name]
        if column.dtype.kind in "fiu" or pd.api.types.is_float_dtype(column.dtype):
            values[name] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_integer_dtype(column.dtype):
            values[name] = column.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values[name] = [None if pd.isna(v) else v for v in column.tolist()]
    return _Columns(stamps, values)


def _polars_columns(frame: Any) -> _Columns:
    pl, np = require("polars"), require("numpy")
    names = list(frame.columns)
    _missing(names, names)
    if "timestamp" not in names:
        raise ValidationError("timestamp: the frame has no timestamp column", field="timestamp")
    times = frame.get_column("timestamp")
    if not isinstance(times.dtype, pl.Datetime):
        raise ValidationError(
            f"timestamp: expected a Datetime column, got {times.dtype}", field="timestamp"
        )
    if times.dtype.time_zone is None:
        raise _naive("the timestamp column")
    if times.null_count():
        first = int(np.flatnonzero(times.is_null().to_numpy())[0])
        raise ValidationError(f"timestamp: row {first} has no open time", field="timestamp")
    micros = times.dt.convert_time_zone("UTC").dt.cast_time_unit("us").dt.epoch("us")
    stamps = micros.to_numpy().astype(np.int64, copy=False)
    values: dict[str, Any] = {}
    for name in VALUE_COLUMNS:
        if name not in names:
            values[name] = np.full(len(frame), np.nan)
            continue
        column = frame.get_column(name)
        if column.dtype.is_numeric() and not isinstance(column.dtype, pl.Decimal):
            values[name] = column.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        else:
            values[name] = column.to_list()
    return _Columns(stamps, values)


def _check_order(np: Any, stamps: Any, key: SeriesKey) -> None:
    """Open times strictly increasing: the first step back or repeat is the error."""
    if len(stamps) < 2:
        return
    steps = np.diff(stamps)
    bad = np.flatnonzero(steps <= 0)
    if not len(bad):
        return
    row = int(bad[0]) + 1
    at, before = _iso(int(stamps[row])), _iso(int(stamps[row - 1]))
    if steps[row - 1] == 0:
        raise ValidationError(
            f"rows {row - 1} and {row} are the same candle: {key.symbol} {key.exchange} "
            f"{key.timeframe} {at} (duplicate open times); nothing written",
            field="timestamp",
            index=row,
        )
    raise ValidationError(
        f"timestamp: open times must increase: {at} comes after {before} (row {row - 1}); "
        "nothing written",
        field="timestamp",
        index=row,
    )


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))


def _iso(micros: int) -> str:
    return _moment(micros).isoformat()


class _RowBuilder:
    """One row as a real ``OHLCVBar`` (floats by their shortest repr), checked like
    ``upsert_many`` checks it; a broken rule is raised naming the row and its open time."""

    def __init__(self, key: SeriesKey, columns: _Columns) -> None:
        self._key, self._columns = key, columns
        self._opened = candle_opened_rule()

    def bar(self, index: int) -> OHLCVBar:
        micros = int(self._columns.stamps[index])
        try:
            values = {name: self._value(name, index) for name in VALUE_COLUMNS}
            bar = OHLCVBar(
                symbol=self._key.symbol,
                exchange=self._key.exchange,
                timeframe=self._key.timeframe,
                timestamp=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros),
                price_type=self._key.price_type,
                **values,
            )
            self._opened(bar.timeframe, bar.timestamp)
        except (ValidationError, OverflowError) as exc:
            field = exc.field if isinstance(exc, ValidationError) else "timestamp"
            raise ValidationError(
                f"{exc} (open time {_iso(micros)}); nothing written", field=field, index=index
            ) from None
        return bar

    def _value(self, name: str, index: int) -> Any:
        value = self._columns.values[name][index]
        if hasattr(value, "item"):  # a numpy scalar: its repr is not the float's
            value = value.item()
        if isinstance(value, float):
            if value != value and name in ("quote_volume", "trades_count"):
                return None  # a float column's missing value
            if name == "trades_count":
                return int(value) if value.is_integer() else value
            return Decimal(repr(value))
        return value


def _checked_arrays(
    np: Any, key: SeriesKey, columns: _Columns, rows: _RowBuilder
) -> dict[str, Any]:
    """The float64 columns checked (see the module docstring) as Arrow decimal128(20, 8)
    columns and an int64 trades_count column."""
    values, stamps = columns.values, columns.stamps
    count = len(stamps)
    flagged = np.zeros(count, dtype=bool)
    scaled: dict[str, Any] = {}
    with np.errstate(invalid="ignore", over="ignore"):
        for name in DECIMAL_COLUMNS:
            column = values[name]
            units = np.rint(column * 1e8)
            exact = np.isfinite(column) & (np.abs(column) < _SAFE) & (units / 1e8 == column)
            if name == "quote_volume":
                exact |= np.isnan(column)
            flagged |= ~exact
            scaled[name] = np.where(exact & ~np.isnan(column), units, 0).astype(np.int64)
        open_, high, low, close = (values[n] for n in ("open", "high", "low", "close"))
        if key.price_type != PriceType.PREMIUM_INDEX:
            flagged |= (open_ <= 0) | (high <= 0) | (low <= 0) | (close <= 0)
        flagged |= (values["volume"] < 0) | (values["quote_volume"] < 0)
        flagged |= (low > np.minimum(open_, close)) | (high < np.maximum(open_, close))
        trades = values["trades_count"]
        known = ~np.isnan(trades)
        flagged |= known & ((trades < 0) | (trades > _INT_MAX) | (trades != np.floor(trades)))
    flagged |= _time_flags(np, key, stamps)
    limbs = {name: _limbs(np, scaled[name]) for name in DECIMAL_COLUMNS}
    trade_values = np.where(known & ~flagged, trades, 0).astype(np.int64)
    trade_known = known.copy()
    for index in np.flatnonzero(flagged).tolist():
        bar = rows.bar(index)  # raises the record's own error, or the row is valid
        for name in DECIMAL_COLUMNS:
            number = getattr(bar, name)
            unscaled = 0 if number is None else int(number.scaleb(SCALE))
            limbs[name][index] = (unscaled & _LIMB, (unscaled >> 64) & _LIMB)
        trade_known[index] = bar.trades_count is not None
        trade_values[index] = bar.trades_count or 0
    pa = require("pyarrow")
    arrays = {
        name: _decimal_array(pa, np, limbs[name], None if name != "quote_volume" else ~flagged_null)
        for name, flagged_null in ((n, np.isnan(values[n])) for n in DECIMAL_COLUMNS)
    }
    arrays["trades_count"] = pa.array(trade_values, mask=~trade_known)
    return arrays


def _time_flags(np: Any, key: SeriesKey, stamps: Any) -> Any:
    """Rows whose open time may break a rule: off the timeframe's boundary, outside the
    supported range, or within one candle (and the clock skew) of now."""
    timeframe = parse_timeframe(key.timeframe)
    latest = int((LATEST - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    flags = (stamps < 0) | (stamps > latest)
    seconds = timeframe.seconds
    if seconds is None:
        return np.ones(len(stamps), dtype=bool)  # calendar months: each checked as a record
    anchor = int(timeframe.anchor.timestamp()) * _US
    flags |= (stamps - anchor) % (seconds * _US) != 0
    recent = datetime.now(UTC) - timedelta(seconds=seconds + 3600)
    flags |= stamps > int(recent.timestamp()) * _US
    return flags


def _limbs(np: Any, units: Any) -> Any:
    """int64 unscaled values as the two little-endian 64-bit limbs of a decimal128."""
    limbs = np.empty((len(units), 2), dtype=np.int64)
    limbs[:, 0] = units
    limbs[:, 1] = units >> 63
    return limbs.view(np.uint64)


def _decimal_array(pa: Any, np: Any, limbs: Any, valid: Any) -> Any:
    kind = pa.decimal128(PRECISION, SCALE)
    data = pa.py_buffer(np.ascontiguousarray(limbs).tobytes())
    if valid is None or bool(valid.all()):
        return pa.Array.from_buffers(kind, len(limbs), [None, data])
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    nulls = int(len(valid) - valid.sum())
    return pa.Array.from_buffers(kind, len(limbs), [bitmap, data], null_count=nulls)
