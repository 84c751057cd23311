"""The raw drivers' SQL text, for both placeholder styles (``?`` for sqlite3, ``$n`` asyncpg).

Statements are built from constant table and column names only; every value is a bound
parameter (hence the S608 exemption for this file).
"""

# ruff: noqa: S608

from __future__ import annotations

from iftb.data.storage.repositories.market.candle_io import COLUMNS, KEY_COLUMNS, VALUE_COLUMNS

NATIVE_COLUMNS = tuple(name for name in COLUMNS if name != "price_type")
"""The columns of a benchmark candle (``candles.NativeRow``): trade candles, whose ``price_type``
takes its default."""

TRADE_COLUMNS = (
    "trade_id",
    "symbol",
    "exchange",
    "side",
    "action",
    "entry_price",
    "exit_price",
    "quantity",
    "leverage",
    "realized_pnl",
    "realized_pnl_pct",
    "fee",
    "entry_time",
    "exit_time",
)
"""The trade columns the benchmarks seed (the rest take their server defaults)."""

PG_STAGE = "bench_raw_stage"

_COLUMN_LIST = ", ".join(f'"{name}"' for name in NATIVE_COLUMNS)
_KEY_LIST = ", ".join(f'"{name}"' for name in KEY_COLUMNS)
_ON_CONFLICT = f"ON CONFLICT ({_KEY_LIST}) DO UPDATE SET " + ", ".join(
    f'"{name}" = excluded."{name}"' for name in VALUE_COLUMNS
)
_SERIES = "symbol = {0} AND exchange = {1} AND timeframe = {2}"


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


SQLITE_INSERT = f"INSERT INTO ohlcv ({_COLUMN_LIST}) VALUES ({_placeholders(len(NATIVE_COLUMNS))})"
SQLITE_UPSERT = f"{SQLITE_INSERT} {_ON_CONFLICT}"
SQLITE_RANGE = (
    f"SELECT {_COLUMN_LIST} FROM ohlcv WHERE {_SERIES.format('?', '?', '?')} "
    "AND timestamp BETWEEN ? AND ? ORDER BY timestamp"
)
SQLITE_TIMESTAMPS = (
    f"SELECT timestamp FROM ohlcv WHERE {_SERIES.format('?', '?', '?')} ORDER BY timestamp"
)
SQLITE_INSERT_TRADE = (
    f"INSERT INTO trades ({', '.join(TRADE_COLUMNS)}) VALUES ({_placeholders(len(TRADE_COLUMNS))})"
)

PG_CREATE_STAGE = (
    f"CREATE TEMP TABLE {PG_STAGE} ON COMMIT DELETE ROWS AS "
    f"SELECT {_COLUMN_LIST} FROM ohlcv WITH NO DATA"
)
PG_MERGE = (
    f"INSERT INTO ohlcv ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {PG_STAGE} {_ON_CONFLICT}"
)
PG_RANGE = (
    f"SELECT {_COLUMN_LIST} FROM ohlcv WHERE {_SERIES.format('$1', '$2', '$3')} "
    "AND timestamp BETWEEN $4 AND $5 ORDER BY timestamp"
)
PG_TIMESTAMPS = (
    f"SELECT timestamp FROM ohlcv WHERE {_SERIES.format('$1', '$2', '$3')} ORDER BY timestamp"
)

ALL_CANDLES = f"SELECT {_COLUMN_LIST} FROM ohlcv ORDER BY {_KEY_LIST}"
"""Every stored candle's key and values, in key order (for the identical-rows check)."""
PG_OWN_CANDLES = f"SELECT {_COLUMN_LIST} FROM ohlcv WHERE symbol = ANY($1) ORDER BY {_KEY_LIST}"
"""The same for the benchmark's own series only (``candles.OWN_SYMBOLS``)."""
PG_DELETE_OWN = "DELETE FROM ohlcv WHERE symbol = ANY($1)"
"""Against an existing database, the benchmark deletes its own series and nothing else."""
