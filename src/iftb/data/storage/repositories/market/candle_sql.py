"""The candle queries: which rows are a series (and a range of it), and the set-based gap
detection and resampling, in one statement each.

Both number candles from their timeframe's anchor in SQL (``candle_number``), so a gap is two
consecutive stored candles whose numbers differ by more than one, and a resampled candle is a
group of source candles sharing a target number. Calendar months are numbered by month, never
by a fixed duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select

from iftb.data.storage.enums import PriceType
from iftb.data.storage.market_models import SeriesKeyColumns
from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.sql_functions import (
    apart_more_than,
    dec_max,
    dec_min,
    dec_sum,
    epoch_seconds,
    month_index,
)
from iftb.data.storage.timeframes import Timeframe, parse_timeframe
from iftb.data.storage.types import UTCDateTime
from iftb.data.storage.validation import aware_utc, choice_rule


def candle_number(timeframe: Timeframe, column: Any) -> ColumnElement[int]:
    """The candle number of a timestamp column, counted from the timeframe's anchor."""
    if timeframe.seconds is None:
        return month_index(column)
    anchor = int(timeframe.anchor.timestamp())
    return (epoch_seconds(column) - anchor) // timeframe.seconds


def gap_rows(
    timeframe: Timeframe, series: ColumnElement[bool], window: ColumnElement[bool] | None
) -> Select[Any]:
    """Stored candles followed by a hole (``ts``, ``next_ts``), plus the last stored candle
    (``next_ts`` NULL). One window function over the key index; the comparison costs no more
    than a subtraction per row (a second window, or epoch arithmetic, would cost several
    times the scan)."""
    timestamp = OHLCVModel.timestamp
    stored = select(
        timestamp.label("ts"),
        func.lead(timestamp, type_=UTCDateTime()).over(order_by=timestamp).label("next_ts"),
    ).where(series)
    if window is not None:
        stored = stored.where(window)
    steps = stored.subquery("steps")
    if timeframe.seconds is None:  # months differ in length: compare month numbers
        jump = candle_number(timeframe, steps.c.next_ts) - candle_number(timeframe, steps.c.ts) > 1
    else:
        jump = apart_more_than(steps.c.next_ts, steps.c.ts, timeframe.seconds)
    return (
        select(steps.c.ts, steps.c.next_ts)
        .where(or_(steps.c.next_ts.is_(None), jump))
        .order_by(steps.c.ts)
    )


def resample_rows(source: Timeframe, target: Timeframe, window: ColumnElement[bool]) -> Select[Any]:
    """One row per target candle: ``bucket`` (its number), OHLCV values, ``source_count``."""
    del source  # the window already selects the source series
    candle = OHLCVModel.__table__.c
    bucket = candle_number(target, candle.timestamp)
    ranked = (
        select(
            bucket.label("bucket"),
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
            candle.quote_volume,
            candle.trades_count,
            func.row_number()
            .over(partition_by=bucket, order_by=candle.timestamp.asc())
            .label("from_first"),
            func.row_number()
            .over(partition_by=bucket, order_by=candle.timestamp.desc())
            .label("from_last"),
        )
        .where(window)
        .subquery("ranked")
    )
    row = ranked.c
    return (
        select(
            row.bucket,
            dec_max(case((row.from_first == 1, row.open))).label("open"),
            dec_max(row.high).label("high"),
            dec_min(row.low).label("low"),
            dec_max(case((row.from_last == 1, row.close))).label("close"),
            dec_sum(row.volume).label("volume"),
            dec_sum(row.quote_volume).label("quote_volume"),
            func.sum(row.trades_count).label("trades_count"),
            func.count().label("source_count"),
        )
        .group_by(row.bucket)
        .order_by(row.bucket)
    )


@dataclass(frozen=True, slots=True, order=True)
class SeriesKey:
    """One candle series: (symbol, exchange, timeframe code, price type value)."""

    symbol: str
    exchange: str
    timeframe: str
    price_type: str

    @classmethod
    def named(cls, symbol: str, timeframe: str, exchange: str, price_type: str) -> SeriesKey:
        """The series as the repository's methods name it (a timeframe or price type by name
        is checked: a ValidationError names the field)."""
        return cls(symbol, exchange, parse_timeframe(timeframe).code, PRICE_TYPE(price_type).value)

    def of(self, model: type[SeriesKeyColumns] | type[OHLCVModel]) -> ColumnElement[bool]:
        """The rows of this series in ``model``'s table."""
        return and_(
            model.symbol == self.symbol,
            model.exchange == self.exchange,
            model.timeframe == self.timeframe,
            model.price_type == self.price_type,
        )

    @property
    def lock_name(self) -> str:
        return f"iftb-candles:{self.symbol}:{self.exchange}:{self.timeframe}:{self.price_type}"


PRICE_TYPE = choice_rule("price_type", PriceType)
"""A price type given by name: the enum member, or a ValidationError naming the field."""


def series_condition(
    symbol: str, timeframe: str, exchange: str, price_type: str
) -> ColumnElement[bool]:
    """One series: a symbol's candles of one timeframe and price type on one exchange."""
    return and_(
        OHLCVModel.symbol == symbol,
        OHLCVModel.exchange == exchange,
        OHLCVModel.timeframe == parse_timeframe(timeframe).code,
        OHLCVModel.price_type == PRICE_TYPE(price_type).value,
    )


def key_filters(
    model: type[SeriesKeyColumns] | type[OHLCVModel],
    symbol: str | None,
    timeframe: str | None,
    exchange: str | None,
    price_type: str | None,
) -> list[ColumnElement[bool]]:
    """The series of ``model``'s table matching each part of the key that is given (an
    inventory's filters)."""
    code = None if timeframe is None else parse_timeframe(timeframe).code
    kind = None if price_type is None else PRICE_TYPE(price_type).value
    parts = (
        (model.symbol, symbol),
        (model.exchange, exchange),
        (model.timeframe, code),
        (model.price_type, kind),
    )
    return [column == value for column, value in parts if value is not None]


def range_condition(
    symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str, price_type: str
) -> ColumnElement[bool]:
    """One series' candles opening in ``[start, end]``: a single range of the key index."""
    return and_(
        series_condition(symbol, timeframe, exchange, price_type),
        OHLCVModel.timestamp.between(aware_utc("start", start), aware_utc("end", end)),
    )
