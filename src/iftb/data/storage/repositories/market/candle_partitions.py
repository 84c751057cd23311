"""Time partitions of the candle table on PostgreSQL (migrations 0002 and 0004); SQLite has none.

Partitions are created and dropped by SECURITY DEFINER functions the migrations install, so the
bot's DML-only role can write into a new month and apply retention without DDL rights. A write
creates the partitions of the months its candles fall in, never of the months between them.

A missing partition is created in a transaction of its own, committed before the write goes on,
when the caller's transaction has not touched the candle table yet: on Citus the function's DDL
runs as the functions' owner, and a distributed table may not be changed by two users in one
transaction. An empty partition left by a write that then fails is harmless (retention drops
it). A transaction that has touched the table creates it in place: a transaction of its own would
wait for the locks this one holds (on Citus even row writes block the new shards' attachment, for
ever). On Citus that is refused to any role but the functions' owner: a ``ClusterError`` says to
create months ahead (``iftb-db partitions --ahead``, ``iftb-db distribute``), which keeps this
out of the writes altogether.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage.errors import ClusterError
from iftb.data.storage.repositories.market.candle_sql import SeriesKey

_ENSURE = text("SELECT iftb_ensure_ohlcv_partitions(:days)").bindparams(
    bindparam("days", type_=ARRAY(DateTime(timezone=True)))
)
_MISSING = text(
    "SELECT pg_catalog.array_agg(d) FROM pg_catalog.unnest(:days) AS d "
    "WHERE NOT EXISTS (SELECT FROM public.iftb_ohlcv_partitions() p "
    "WHERE d >= p.lower_bound AND d < p.upper_bound)"
).bindparams(bindparam("days", type_=ARRAY(DateTime(timezone=True))))
_TOUCHED_THE_TABLE = text(
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_locks WHERE pid = pg_catalog.pg_backend_pid()"
    " AND relation = 'public.ohlcv'::pg_catalog.regclass)"
)
_CITUS_TWO_USERS = "modified in this transaction by a different user"
_DELETE = text(
    "SELECT public.iftb_delete_ohlcv(:rows_from, :rows_to, :partitions_to,"
    " :symbol, :exchange, :timeframe, :price_type)"
)
_SERIES_KEY = ("symbol", "exchange", "timeframe", "price_type")
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


async def ensure_partitions_for(connection: AsyncConnection, open_times: Iterable[datetime]) -> int:
    """Create the partitions that candles opening at ``open_times`` (aware UTC) need; returns
    how many were new (see the module docstring for the transaction they are made in).

    Only their distinct UTC days are sent: every partition unit (week, month, quarter, year) is
    made of whole UTC days, so the server learns each unit the batch touches from at most 366
    values per year of candles, whatever the batch size.
    """
    days = sorted({moment.date() for moment in open_times})
    midnights = [datetime.combine(day, time(), UTC) for day in days]
    missing = await connection.scalar(_MISSING, {"days": midnights})
    if not missing:
        return 0
    if not await connection.scalar(_TOUCHED_THE_TABLE):
        async with connection.engine.begin() as own_transaction:
            return int(await own_transaction.scalar(_ENSURE, {"days": missing}) or 0)
    try:
        return int(await connection.scalar(_ENSURE, {"days": missing}) or 0)
    except DBAPIError as exc:
        if _CITUS_TWO_USERS not in str(exc.orig):
            raise
        raise ClusterError(
            f"no candle partition for {missing[0]:%Y-%m}: on Citus this role cannot create "
            "one in a unit of work that has already read or written candles; create the "
            "coming months ahead (`iftb-db partitions --ahead 3`) or write a new month in a "
            "unit of work of its own"
        ) from exc


async def ensure_partitions(connection: AsyncConnection, first: datetime, last: datetime) -> int:
    """Create every partition from ``first`` to ``last`` (creating them ahead of time); returns
    how many were new."""
    first, last = first.astimezone(UTC), max(first, last).astimezone(UTC)
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return await ensure_partitions_for(connection, [*days, last])


async def delete_candles(
    connection: AsyncConnection,
    rows: tuple[datetime, datetime],
    partitions_to: datetime,
    series: SeriesKey | None = None,
) -> int:
    """Delete the candles opening in ``rows`` (inclusive), dropping the partitions wholly inside
    ``[rows[0], partitions_to]`` instead — with ``series`` (symbol, exchange, timeframe, price
    type), only its candles, and only partitions holding no other series. Returns the rows
    that went.

    One SECURITY DEFINER call (migrations 0005, 0008): one role drops and deletes (Citus
    requires it).
    """
    result = await connection.execute(
        _DELETE,
        {
            "rows_from": rows[0],
            "rows_to": rows[1],
            "partitions_to": partitions_to,
            **{name: getattr(series, name, None) for name in _SERIES_KEY},
        },
    )
    return int(result.scalar_one())


async def list_partitions(connection: AsyncConnection) -> list[Partition]:
    rows = await connection.execute(_LIST)
    return [Partition(r.name, r.lower_bound, r.upper_bound, r.rows) for r in rows]
