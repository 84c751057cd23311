"""Time partitions of the candle table on PostgreSQL (migration 0002); SQLite has none.

Partitions are created and dropped by SECURITY DEFINER functions the migration installs, so the
bot's DML-only role can write into a new month and apply retention without DDL rights.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ENSURE = text("SELECT iftb_ensure_ohlcv_partitions(:first, :last)")
_DROP = text("SELECT iftb_drop_ohlcv_partitions(:start, :end, :symbol, :exchange, :timeframe)")
_LIST = text(
    "SELECT p.name::text AS name, p.lower_bound, p.upper_bound, c.reltuples::bigint AS rows "
    "FROM iftb_ohlcv_partitions() p JOIN pg_class c ON c.oid = p.name"
)


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: ``[lower, upper)`` of candle open times, and the planner's row estimate
    (-1 before the first ANALYZE)."""

    name: str
    lower: datetime
    upper: datetime
    estimated_rows: int


async def ensure_partitions(connection: AsyncConnection, first: datetime, last: datetime) -> int:
    """Create the partitions candles opening in ``[first, last]`` need; returns how many were
    new (in the caller's transaction)."""
    result = await connection.execute(_ENSURE, {"first": first, "last": last})
    return int(result.scalar_one())


async def drop_whole_partitions(
    connection: AsyncConnection,
    start: datetime,
    end: datetime,
    series: tuple[str, str, str] | None = None,
) -> int:
    """Drop the partitions lying wholly inside ``[start, end]`` — with ``series`` (symbol,
    exchange, timeframe), only those holding no other series. Returns the rows they held."""
    symbol, exchange, timeframe = series or (None, None, None)
    result = await connection.execute(
        _DROP,
        {
            "start": start,
            "end": end,
            "symbol": symbol,
            "exchange": exchange,
            "timeframe": timeframe,
        },
    )
    return int(result.scalar_one())


async def list_partitions(connection: AsyncConnection) -> list[Partition]:
    rows = await connection.execute(_LIST)
    return [Partition(r.name, r.lower_bound, r.upper_bound, r.rows) for r in rows]
