"""Gaps, coverage and resampling of stored candles: computed in SQL, so only their few result
rows reach Python."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select

from iftb.data.storage.enums import PriceType
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.records import Gap, OHLCVBar, ResampledBar, SeriesCoverage
from iftb.data.storage.repositories.base import Repository
from iftb.data.storage.repositories.market.candle_sql import (
    PRICE_TYPE,
    gap_rows,
    range_condition,
    resample_rows,
    series_condition,
)
from iftb.data.storage.timeframes import Timeframe, parse_timeframe
from iftb.data.storage.validation import aware_utc


class CandleAnalysis(Repository):
    """What is stored of the candle series, and larger candles built from smaller ones."""

    async def get_gaps(
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
        tf = parse_timeframe(timeframe)
        lower = tf.ceil(aware_utc("start", start)) if start is not None else None
        upper = tf.floor(aware_utc("end", end)) if end is not None else None
        window = _window(lower, upper)
        series = series_condition(symbol, timeframe, exchange, price_type)
        stored = (await self._execute(gap_rows(tf, series, window))).all()
        if not stored:
            if lower is None or upper is None or lower > upper:
                return []
            return [_gap(tf, lower, upper)]
        gaps = []
        if lower is not None:  # candles missing between the window's start and the first one
            first = select(func.min(OHLCVModel.timestamp)).where(
                series, OHLCVModel.timestamp >= lower
            )
            first_stored = (await self._execute(first)).scalar_one()
            if first_stored > lower:
                gaps.append(_gap(tf, lower, tf.shift(first_stored, -1)))
        for row in stored:
            if row.next_ts is not None:
                gaps.append(_gap(tf, tf.shift(row.ts, 1), tf.shift(row.next_ts, -1)))
            elif upper is not None and row.ts < upper:
                gaps.append(_gap(tf, tf.shift(row.ts, 1), upper))
        return gaps

    async def get_coverage(
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
            .group_by(*series)
            .order_by(*series)
        )
        kind = None if price_type is None else PRICE_TYPE(price_type).value
        for column, value in zip(series, (symbol, exchange, timeframe, kind), strict=True):
            if value is not None:
                statement = statement.where(column == value)
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

    async def resample(
        self,
        symbol: str,
        source_timeframe: str,
        target_timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str = "binance",
        *,
        include_partial: bool = False,
        price_type: str = PriceType.TRADE,
    ) -> list[ResampledBar]:
        """Larger candles built in SQL from the stored smaller ones opening in ``[start, end]``.

        Open is the first source candle's open, close the last one's close, high the max, low
        the min, volumes and trade counts summed. A target candle with source candles missing is
        partial: excluded unless ``include_partial``, and then flagged (``complete`` is False).
        """
        source, target = parse_timeframe(source_timeframe), parse_timeframe(target_timeframe)
        _check_resample(source, target)
        window = range_condition(symbol, source_timeframe, start, end, exchange, price_type)
        rows = await self._execute(resample_rows(source, target, window))
        resampled = []
        for row in rows.mappings():
            opened = target.shift(target.anchor, row["bucket"])
            expected = source.count_between(opened, source.shift(target.shift(opened, 1), -1))
            if row["source_count"] < expected and not include_partial:
                continue
            bar = OHLCVBar.from_row(
                {
                    **row,
                    "timeframe": target.code,
                    "timestamp": opened,
                    "symbol": symbol,
                    "exchange": exchange,
                    "price_type": PRICE_TYPE(price_type).value,
                }
            )
            _check_storable(bar)
            resampled.append(ResampledBar(bar, row["source_count"], expected))
        return resampled


def _window(lower: datetime | None, upper: datetime | None) -> ColumnElement[bool] | None:
    conditions = []
    if lower is not None:
        conditions.append(OHLCVModel.timestamp >= lower)
    if upper is not None:
        conditions.append(OHLCVModel.timestamp <= upper)
    return and_(*conditions) if conditions else None


def _gap(tf: Timeframe, first: datetime, last: datetime) -> Gap:
    return Gap(start=first, end=last, missing=tf.count_between(first, last))


def _check_storable(bar: OHLCVBar) -> None:
    """A built candle obeys the rules of a stored one (summed volumes and trade counts must
    fit their columns), so writing it back never fails, nor stores on SQLite what PostgreSQL
    would refuse."""
    try:
        bar.validate()
    except ValidationError as exc:
        raise ValidationError(
            f"the {bar.timeframe} candle opening {bar.timestamp.isoformat()} cannot be built: "
            f"{exc}",
            field=exc.field,
        ) from None


def _check_resample(source: Timeframe, target: Timeframe) -> None:
    """Every target candle must be a whole number of source candles, on shared boundaries."""
    if source.step is None or source == target:
        raise ValidationError(
            f"source_timeframe: cannot resample {source} into {target}", field="source_timeframe"
        )
    if target.step is None:  # months open at midnight: any source dividing a day fits
        fits = timedelta(days=1) % source.step == timedelta(0)
    else:
        fits = target.step % source.step == timedelta(0) and (
            (target.anchor - source.anchor) % source.step == timedelta(0)
        )
    if not fits:
        raise ValidationError(
            f"target_timeframe: {target} candles are not whole groups of {source} candles",
            field="target_timeframe",
        )
