"""Keeps the candle catalog exact in the unit of work that changes candles (migration 0010).

Every path that writes or deletes candles locks the series it touches (in key order, so two
writers cannot deadlock) and updates only what the change can have moved: the series' bounds and
the runs of missing candles between the stored candles on either side of the span it touched.
The cost follows the batch, not the series.

- A write (``changing``) refreshes after the candles are written: four seeks on the key index,
  then the gaps of that stretch (an index-only count tells a full stretch, the usual append or
  backfill, without scanning it).
- A delete (``deleting``) reads no candle: the span's neighbours follow from the catalog (the
  candle before the span is the one just before it unless that one is in a gap, and then the
  one before the gap), and afterwards the gap between them is simply one gap. On Citus this is
  required: the retention function deletes as another role, and Citus refuses it on candles
  this transaction has read, and refuses this transaction reading them afterwards.

On PostgreSQL the locks are transaction-scoped advisory locks: writers of different series never
wait for each other; a purge or a rebuild (``lock_every_series``) waits for every writer and holds
them off. On SQLite the write unit already holds the database's one write lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage.advisory_locks import hold_locks
from iftb.data.storage.market_models import CandleGapModel, CandleSeriesModel
from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.records import Gap, OHLCVBar
from iftb.data.storage.repositories.market.candle_sql import SeriesKey, gap_rows
from iftb.data.storage.timeframes import Timeframe, parse_timeframe

Span = tuple[datetime, datetime]
"""The first and last open time a change touched, inclusive."""

_EVERY_SERIES = "iftb-candles"
"""Held shared by every candle writer, exclusively by a purge or a rebuild."""


@dataclass(frozen=True, slots=True)
class _Bounds:
    """A series around a touched span: the stored candles just before and after it, the
    series' first and last candle once the change is done, and what the catalog held."""

    before: datetime | None
    after: datetime | None
    first: datetime | None
    last: datetime | None
    missing: int | None
    gaps: int | None


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
    """Around a write of candles in ``spans``: lock the series, then refresh the catalog."""
    await lock_series(connection, spans)
    yield
    await refresh(connection, spans)


async def refresh(connection: AsyncConnection, spans: Mapping[SeriesKey, Span]) -> None:
    """Bring the catalog up to date after candles of ``spans`` were written."""
    for key in sorted(spans):
        touched_from, touched_to = spans[key]
        bounds = await _read_bounds(connection, key, touched_from, touched_to)
        tf = parse_timeframe(key.timeframe)
        found: list[Gap] = []
        if bounds.first is not None and bounds.last is not None:
            scan_from = bounds.before if bounds.before is not None else bounds.first
            scan_to = bounds.after if bounds.after is not None else bounds.last
            found = await _gaps_between(connection, key, tf, scan_from, scan_to)
        await _settle(connection, key, tf, bounds, found)


@asynccontextmanager
async def deleting(
    connection: AsyncConnection, spans: Mapping[SeriesKey, Span]
) -> AsyncIterator[None]:
    """Around a delete of every candle of ``spans``: lock the series and work out from the
    catalog what will be left, then settle the catalog."""
    await lock_series(connection, spans)
    plans = {key: await _bounds_after_delete(connection, key, *spans[key]) for key in sorted(spans)}
    yield
    for key, bounds in plans.items():
        tf = parse_timeframe(key.timeframe)
        found = []
        if bounds.before is not None and bounds.after is not None:
            first, last = tf.shift(bounds.before, 1), tf.shift(bounds.after, -1)
            found = [candle_gap(tf, first, last)] if first <= last else []
        await _settle(connection, key, tf, bounds, found)


async def lock_series(connection: AsyncConnection, keys: Iterable[SeriesKey]) -> None:
    """Serialise the writers of these series until the transaction ends."""
    names = [key.lock_name for key in sorted(set(keys))]
    await hold_locks(connection, shared=[_EVERY_SERIES], exclusive=names)


async def lock_every_series(connection: AsyncConnection) -> None:
    """Wait for every candle writer, and hold new ones off, until the transaction ends."""
    await hold_locks(connection, exclusive=[_EVERY_SERIES])


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


async def _read_bounds(
    connection: AsyncConnection, key: SeriesKey, touched_from: datetime, touched_to: datetime
) -> _Bounds:
    """Four seeks on the key index and the catalog's row, in one statement."""
    stamp = OHLCVModel.timestamp
    series = key.of(OHLCVModel)
    catalog = key.of(CandleSeriesModel)

    def seek(extreme: ColumnElement[Any], *where: ColumnElement[bool]) -> ColumnElement[Any]:
        return select(extreme).where(series, *where).scalar_subquery()

    row = (
        await connection.execute(
            select(
                seek(func.max(stamp), stamp < touched_from),
                seek(func.min(stamp), stamp > touched_to),
                seek(func.min(stamp)),
                seek(func.max(stamp)),
                select(CandleSeriesModel.missing_count).where(catalog).scalar_subquery(),
                select(CandleSeriesModel.gap_count).where(catalog).scalar_subquery(),
            )
        )
    ).one()
    return _Bounds(*row)


async def _bounds_after_delete(
    connection: AsyncConnection, key: SeriesKey, delete_from: datetime, delete_to: datetime
) -> _Bounds:
    """What a series will hold around ``[delete_from, delete_to]`` once its candles there are
    deleted, from the catalog alone."""
    held = (
        await connection.execute(
            select(
                CandleSeriesModel.first_open,
                CandleSeriesModel.last_open,
                CandleSeriesModel.missing_count,
                CandleSeriesModel.gap_count,
            ).where(key.of(CandleSeriesModel))
        )
    ).one_or_none()
    if held is None:
        return _Bounds(None, None, None, None, None, None)
    first, last, missing, gaps = held
    tf = parse_timeframe(key.timeframe)
    just_before, just_after = tf.shift(tf.ceil(delete_from), -1), tf.shift(tf.floor(delete_to), 1)
    before = None
    if just_before >= first:
        before = await _stored_at(connection, key, tf, min(just_before, last))
    after = None
    if just_after <= last:
        after = await _stored_at(connection, key, tf, max(just_after, first), 1)
    return _Bounds(
        before,
        after,
        first if before is not None else after,
        last if after is not None else before,
        missing,
        gaps,
    )


async def _stored_at(
    connection: AsyncConnection, key: SeriesKey, tf: Timeframe, moment: datetime, step: int = -1
) -> datetime:
    """The stored candle at ``moment`` (an open time between the series' first and last), or
    when ``moment`` is in a gap the stored one before (``step`` -1) or after (1) the gap."""
    gap = (
        await connection.execute(
            select(CandleGapModel.first_missing, CandleGapModel.last_missing)
            .where(key.of(CandleGapModel), CandleGapModel.first_missing <= moment)
            .order_by(CandleGapModel.first_missing.desc())
            .limit(1)
        )
    ).one_or_none()
    if gap is None or gap.last_missing < moment:
        return moment
    return tf.shift(gap.first_missing if step < 0 else gap.last_missing, step)


async def _settle(
    connection: AsyncConnection, key: SeriesKey, tf: Timeframe, bounds: _Bounds, found: list[Gap]
) -> None:
    """Replace the gaps between the span's neighbours by ``found`` and update the series' row
    from the difference (or remove the series when no candle is left)."""
    if bounds.first is None or bounds.last is None:
        await connection.execute(delete(CandleSeriesModel).where(key.of(CandleSeriesModel)))
        await connection.execute(delete(CandleGapModel).where(key.of(CandleGapModel)))
        return
    stale = delete(CandleGapModel).where(key.of(CandleGapModel))
    if bounds.before is not None:
        stale = stale.where(CandleGapModel.first_missing > bounds.before)
    if bounds.after is not None:
        stale = stale.where(CandleGapModel.first_missing < bounds.after)
    removed = (await connection.execute(stale.returning(CandleGapModel.missing))).scalars().all()
    if found:
        rows = [
            asdict(key) | {"first_missing": g.start, "last_missing": g.end, "missing": g.missing}
            for g in found
        ]
        await connection.execute(insert(CandleGapModel), rows)
    missing = (bounds.missing or 0) - sum(removed) + sum(gap.missing for gap in found)
    values = {
        "first_open": bounds.first,
        "last_open": bounds.last,
        "candle_count": tf.count_between(bounds.first, bounds.last) - missing,
        "missing_count": missing,
        "gap_count": (bounds.gaps or 0) - len(removed) + len(found),
    }
    if bounds.missing is None:
        await connection.execute(insert(CandleSeriesModel).values(**asdict(key), **values))
    else:
        await connection.execute(
            update(CandleSeriesModel).where(key.of(CandleSeriesModel)).values(**values)
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
