"""Keeps the candle catalog exact in the unit of work that changes candles (migration 0010).

Every path that writes or deletes candles locks the series it touches (sorted, so two writers
cannot deadlock), changes the candles, then refreshes only what that change can have moved:
the series' bounds (four index seeks) and the runs of missing candles between the stored candles
on either side of the span it touched (one range of the key index). The cost follows the batch,
not the series. Writers of different series never wait for each other on PostgreSQL; SQLite has
one writer at a time anyway (a write unit holds the database's write lock).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage.market_models import CandleGapModel, CandleSeriesModel
from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.records import Gap, OHLCVBar
from iftb.data.storage.repositories.market.candle_sql import SeriesKey, gap_rows
from iftb.data.storage.timeframes import Timeframe, parse_timeframe

Span = tuple[datetime, datetime]
"""The first and last open time a change touched, inclusive."""

_LOCK = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=Text), 0)))


def spans_of(bars: Iterable[OHLCVBar]) -> dict[SeriesKey, Span]:
    """The span each series of a batch touches."""
    spans: dict[SeriesKey, Span] = {}
    for bar in bars:
        key = SeriesKey(bar.symbol, bar.exchange, bar.timeframe, bar.price_type)
        known = spans.get(key)
        if known is None:
            spans[key] = (bar.timestamp, bar.timestamp)
        elif not known[0] <= bar.timestamp <= known[1]:
            spans[key] = (min(known[0], bar.timestamp), max(known[1], bar.timestamp))
    return spans


@asynccontextmanager
async def changing(
    connection: AsyncConnection, spans: Mapping[SeriesKey, Span]
) -> AsyncIterator[None]:
    """Around a change of the candles of ``spans``: lock the series, then refresh the catalog
    in the same transaction."""
    await lock_series(connection, spans)
    yield
    await refresh(connection, spans)


async def series_opening_by(connection: AsyncConnection, moment: datetime) -> dict[SeriesKey, Span]:
    """The series with candles opening at or before ``moment`` (by the catalog), each with the
    span from its first candle to ``moment``: what a purge touches."""
    series = CandleSeriesModel
    rows = await connection.execute(
        select(
            series.symbol,
            series.exchange,
            series.timeframe,
            series.price_type,
            series.first_open,
        ).where(series.first_open <= moment)
    )
    return {SeriesKey(*row[:4]): (row.first_open, moment) for row in rows}


async def lock_series(connection: AsyncConnection, keys: Iterable[SeriesKey]) -> None:
    """Serialise the writers of these series until the transaction ends: a transaction-scoped
    advisory lock per series on PostgreSQL, taken in key order; on SQLite the write unit
    already holds the database's one write lock."""
    if connection.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        await connection.execute(_LOCK, {"key": key.lock_name})


async def refresh(connection: AsyncConnection, spans: Mapping[SeriesKey, Span]) -> None:
    """Bring the catalog up to date after candles of ``spans`` changed (locked beforehand)."""
    for key in sorted(spans):
        await _refresh_series(connection, key, *spans[key])


async def _refresh_series(
    connection: AsyncConnection, key: SeriesKey, touched_from: datetime, touched_to: datetime
) -> None:
    tf = parse_timeframe(key.timeframe)
    bounds = (await connection.execute(_bounds(key, touched_from, touched_to))).one()
    if bounds.first is None:  # the series has no candle left
        await connection.execute(delete(CandleSeriesModel).where(key.of(CandleSeriesModel)))
        await connection.execute(delete(CandleGapModel).where(key.of(CandleGapModel)))
        return
    # Runs of missing candles can only have changed between the stored candles on either side
    # of the touched span (or the series' ends).
    scan_from = bounds.before if bounds.before is not None else bounds.first
    scan_to = bounds.after if bounds.after is not None else bounds.last
    stale = delete(CandleGapModel).where(key.of(CandleGapModel))
    if bounds.before is not None:
        stale = stale.where(CandleGapModel.first_missing > bounds.before)
    if bounds.after is not None:
        stale = stale.where(CandleGapModel.first_missing < bounds.after)
    removed = (await connection.execute(stale.returning(CandleGapModel.missing))).scalars().all()
    found = await _gaps_between(connection, key, tf, scan_from, scan_to)
    if found:
        await connection.execute(
            insert(CandleGapModel),
            [
                {
                    "symbol": key.symbol,
                    "exchange": key.exchange,
                    "timeframe": key.timeframe,
                    "price_type": key.price_type,
                    "first_missing": gap.start,
                    "last_missing": gap.end,
                    "missing": gap.missing,
                }
                for gap in found
            ],
        )
    missing = (bounds.missing or 0) - sum(removed) + sum(gap.missing for gap in found)
    values = {
        "first_open": bounds.first,
        "last_open": bounds.last,
        "candle_count": tf.count_between(bounds.first, bounds.last) - missing,
        "missing_count": missing,
        "gap_count": (bounds.gaps or 0) - len(removed) + len(found),
    }
    if bounds.missing is None:
        await connection.execute(insert(CandleSeriesModel).values(**_key_values(key), **values))
    else:
        await connection.execute(
            update(CandleSeriesModel).where(key.of(CandleSeriesModel)).values(**values)
        )


def _bounds(key: SeriesKey, touched_from: datetime, touched_to: datetime) -> Select[Any]:
    """One row: the stored candles just before and after the span, the series' first and last
    candle (four seeks on the key index), and what the catalog held of the series."""
    stamp = OHLCVModel.timestamp
    series = key.of(OHLCVModel)
    catalog = key.of(CandleSeriesModel)

    def seek(extreme: ColumnElement[Any], *where: ColumnElement[bool]) -> ColumnElement[Any]:
        return select(extreme).where(series, *where).scalar_subquery()

    return select(
        seek(func.max(stamp), stamp < touched_from).label("before"),
        seek(func.min(stamp), stamp > touched_to).label("after"),
        seek(func.min(stamp)).label("first"),
        seek(func.max(stamp)).label("last"),
        select(CandleSeriesModel.missing_count).where(catalog).scalar_subquery().label("missing"),
        select(CandleSeriesModel.gap_count).where(catalog).scalar_subquery().label("gaps"),
    )


async def _gaps_between(
    connection: AsyncConnection, key: SeriesKey, tf: Timeframe, first: datetime, last: datetime
) -> list[Gap]:
    """The runs of missing candles between two stored candles of the series. A full range (the
    usual append or backfill) is told by one index-only count, without the window scan."""
    series = key.of(OHLCVModel)
    window = OHLCVModel.timestamp.between(first, last)
    stored = (await connection.execute(select(func.count()).where(series, window))).scalar_one()
    if stored == tf.count_between(first, last):
        return []
    rows = await connection.execute(gap_rows(tf, series, window))
    return [
        candle_gap(tf, tf.shift(row.ts, 1), tf.shift(row.next_ts, -1))
        for row in rows
        if row.next_ts is not None
    ]


def candle_gap(tf: Timeframe, first: datetime, last: datetime) -> Gap:
    """The run of missing candles opening from ``first`` to ``last``, inclusive."""
    return Gap(start=first, end=last, missing=tf.count_between(first, last))


def _key_values(key: SeriesKey) -> dict[str, str]:
    return {
        "symbol": key.symbol,
        "exchange": key.exchange,
        "timeframe": key.timeframe,
        "price_type": key.price_type,
    }
