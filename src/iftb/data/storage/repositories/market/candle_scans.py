"""The candle series as the stored rows say, computed by scanning them in SQL: the independent
check of the catalog (``catalog_upkeep``), which the everyday reads use instead."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select

from iftb.data.storage.enums import PriceType
from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.records import Gap, SeriesCoverage
from iftb.data.storage.repositories.base import Repository
from iftb.data.storage.repositories.market.candle_sql import (
    gap_rows,
    key_filters,
    series_condition,
)
from iftb.data.storage.repositories.market.catalog_upkeep import candle_gap
from iftb.data.storage.timeframes import Timeframe, parse_timeframe
from iftb.data.storage.validation import aware_utc


class CandleScans(Repository):
    """Gaps and coverage by scanning the candles: O(rows), exact whatever the catalog says."""

    async def scan_gaps(
        self,
        symbol: str,
        timeframe: str,
        exchange: str = "binance",
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        price_type: str = PriceType.TRADE,
    ) -> list[Gap]:
        """Runs of missing candles between the first and last stored candle, or within
        ``[start, end]`` when given — then missing candles at the window's edges count too."""
        tf, lower, upper = candle_window(timeframe, start, end)
        window = _window(lower, upper)
        series = series_condition(symbol, timeframe, exchange, price_type)
        stored = (await self._execute(gap_rows(tf, series, window))).all()
        if not stored:
            if lower is None or upper is None or lower > upper:
                return []
            return [candle_gap(tf, lower, upper)]
        gaps = []
        if lower is not None:  # candles missing between the window's start and the first one
            first = select(func.min(OHLCVModel.timestamp)).where(
                series, OHLCVModel.timestamp >= lower
            )
            first_stored = (await self._execute(first)).scalar_one()
            if first_stored > lower:
                gaps.append(candle_gap(tf, lower, tf.shift(first_stored, -1)))
        for row in stored:
            if row.next_ts is not None:
                gaps.append(candle_gap(tf, tf.shift(row.ts, 1), tf.shift(row.next_ts, -1)))
            elif upper is not None and row.ts < upper:
                gaps.append(candle_gap(tf, tf.shift(row.ts, 1), upper))
        return gaps

    async def scan_coverage(
        self,
        symbol: str | None = None,
        timeframe: str | None = None,
        exchange: str | None = None,
        *,
        price_type: str | None = None,
    ) -> list[SeriesCoverage]:
        """Per stored series: first and last candle, count, expected count (and so missing).
        Every price type unless ``price_type`` is given."""
        series = (
            OHLCVModel.symbol,
            OHLCVModel.exchange,
            OHLCVModel.timeframe,
            OHLCVModel.price_type,
        )
        statement = (
            select(
                *series,
                func.min(OHLCVModel.timestamp).label("first"),
                func.max(OHLCVModel.timestamp).label("last"),
                func.count().label("stored"),
            )
            .where(*key_filters(OHLCVModel, symbol, timeframe, exchange, price_type))
            .group_by(*series)
            .order_by(*series)
        )
        rows = await self._execute(statement)
        return [
            SeriesCoverage(
                symbol=row.symbol,
                exchange=row.exchange,
                timeframe=row.timeframe,
                first=row.first,
                last=row.last,
                count=row.stored,
                expected=parse_timeframe(row.timeframe).count_between(row.first, row.last),
                price_type=row.price_type,
            )
            for row in rows
        ]


def candle_window(
    timeframe: str, start: datetime | None, end: datetime | None
) -> tuple[Timeframe, datetime | None, datetime | None]:
    """The timeframe, and the open times of the first and last candle a window ``[start, end]``
    can hold (either end open when None)."""
    tf = parse_timeframe(timeframe)
    lower = tf.ceil(aware_utc("start", start)) if start is not None else None
    upper = tf.floor(aware_utc("end", end)) if end is not None else None
    return tf, lower, upper


def _window(lower: datetime | None, upper: datetime | None) -> ColumnElement[bool] | None:
    conditions = []
    if lower is not None:
        conditions.append(OHLCVModel.timestamp >= lower)
    if upper is not None:
        conditions.append(OHLCVModel.timestamp <= upper)
    return and_(*conditions) if conditions else None
