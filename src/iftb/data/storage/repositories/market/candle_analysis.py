"""Gaps, coverage and the inventory of stored candles, read from the catalog that every candle
write keeps exact (``catalog_upkeep``), so they cost O(series) or O(gaps), never O(candles); and
resampling, computed in SQL so only the built candles reach Python."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from iftb.data.storage.enums import PriceType
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.market_models import CandleGapModel, CandleSeriesModel
from iftb.data.storage.records import Gap, OHLCVBar, ResampledBar, SeriesCoverage, SeriesInventory
from iftb.data.storage.repositories.market.candle_scans import CandleScans, candle_window
from iftb.data.storage.repositories.market.candle_sql import (
    PRICE_TYPE,
    SeriesKey,
    key_filters,
    range_condition,
    resample_rows,
)
from iftb.data.storage.repositories.market.catalog_upkeep import candle_gap
from iftb.data.storage.timeframes import Timeframe, parse_timeframe


class CandleAnalysis(CandleScans):
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
        ``[start, end]`` when given — then missing candles at the window's edges count too.
        Read from the catalog: O(gaps returned), whatever the series' length."""
        tf, lower, upper = candle_window(timeframe, start, end)
        key = SeriesKey.named(symbol, timeframe, exchange, price_type)
        stored = (
            await self._execute(
                select(CandleSeriesModel.first_open, CandleSeriesModel.last_open).where(
                    key.of(CandleSeriesModel)
                )
            )
        ).first()
        span = None if stored is None else (stored.first_open, stored.last_open)
        if lower is not None and upper is not None and lower > upper:
            return []
        if span is None or not await self._stores_within(key, span, lower, upper):
            if lower is None or upper is None:
                return []
            return [candle_gap(tf, lower, upper)]
        first, last = span
        gaps = []
        if lower is not None and lower < first:
            gaps.append(candle_gap(tf, lower, tf.shift(first, -1)))
        runs = select(CandleGapModel.first_missing, CandleGapModel.last_missing).where(
            key.of(CandleGapModel)
        )
        if lower is not None:
            runs = runs.where(CandleGapModel.last_missing >= lower)
        if upper is not None:
            runs = runs.where(CandleGapModel.first_missing <= upper)
        for run in await self._execute(runs.order_by(CandleGapModel.first_missing)):
            run_from = run.first_missing if lower is None else max(run.first_missing, lower)
            run_to = run.last_missing if upper is None else min(run.last_missing, upper)
            gaps.append(candle_gap(tf, run_from, run_to))
        if upper is not None and upper > last:
            gaps.append(candle_gap(tf, tf.shift(last, 1), upper))
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
        Every price type unless ``price_type`` is given. Read from the catalog: O(series)."""
        return [
            SeriesCoverage(
                symbol=entry.symbol,
                exchange=entry.exchange,
                timeframe=entry.timeframe,
                first=entry.first,
                last=entry.last,
                count=entry.count,
                expected=entry.expected,
                price_type=entry.price_type,
            )
            for entry in await self.get_inventory(
                symbol, timeframe, exchange, price_type=price_type
            )
        ]

    async def get_inventory(
        self,
        symbol: str | None = None,
        timeframe: str | None = None,
        exchange: str | None = None,
        *,
        price_type: str | None = None,
    ) -> list[SeriesInventory]:
        """Every stored series (or those matching the filters) with its span, candle count,
        missing count and number of gaps, in key order: one read of the catalog."""
        series = CandleSeriesModel
        statement = (
            select(*series.__table__.columns)
            .where(*key_filters(series, symbol, timeframe, exchange, price_type))
            .order_by(series.symbol, series.exchange, series.timeframe, series.price_type)
        )
        return [
            SeriesInventory(
                symbol=row.symbol,
                exchange=row.exchange,
                timeframe=row.timeframe,
                first=row.first_open,
                last=row.last_open,
                count=row.candle_count,
                expected=row.candle_count + row.missing_count,
                price_type=row.price_type,
                gaps=row.gap_count,
            )
            for row in await self._execute(statement)
        ]

    async def _stores_within(
        self,
        key: SeriesKey,
        span: tuple[datetime, datetime],
        lower: datetime | None,
        upper: datetime | None,
    ) -> bool:
        """Whether the series stores a candle inside the window: it overlaps the series' span
        and is not wholly inside one of its gaps."""
        first, last = span
        if (upper is not None and upper < first) or (lower is not None and lower > last):
            return False
        if lower is None or upper is None:
            return True
        inside_a_gap = select(CandleGapModel.first_missing).where(
            key.of(CandleGapModel),
            CandleGapModel.first_missing <= lower,
            CandleGapModel.last_missing >= upper,
        )
        return (await self._execute(inside_a_gap)).first() is None

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
