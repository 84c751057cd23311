"""Candle timeframes: parsing, boundary alignment and stepping, in UTC.

Fixed timeframes (1m … 1w) are multiples of a duration counted from an anchor: the Unix epoch
for minutes, hours and days (as exchanges align them), Monday 1970-01-05 for weeks (exchange
weekly candles open on Monday 00:00 UTC). ``1M`` is a calendar month opening on the 1st at 00:00
UTC, so its length varies; it is stepped by calendar arithmetic, never by a fixed duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from iftb.data.storage.errors import ValidationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONDAY_ANCHOR = datetime(1970, 1, 5, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Timeframe:
    """One candle timeframe. ``step`` is None for the calendar month."""

    code: str
    step: timedelta | None

    @property
    def is_monthly(self) -> bool:
        return self.step is None

    @property
    def anchor(self) -> datetime:
        """The instant every candle boundary is counted from."""
        return _MONDAY_ANCHOR if self.code == "1w" else EPOCH

    @property
    def seconds(self) -> int | None:
        """The fixed length in seconds, or None for calendar months."""
        return None if self.step is None else int(self.step.total_seconds())

    def floor(self, moment: datetime) -> datetime:
        """The open time of the candle that contains ``moment``."""
        moment = moment.astimezone(UTC)
        if self.step is None:
            return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return moment - (moment - self.anchor) % self.step

    def ceil(self, moment: datetime) -> datetime:
        """The open time of the first candle that opens at or after ``moment``."""
        floored = self.floor(moment)
        return floored if floored == moment else self.shift(floored, 1)

    def is_aligned(self, moment: datetime) -> bool:
        """Whether ``moment`` is a candle open time of this timeframe."""
        return self.floor(moment) == moment

    def shift(self, moment: datetime, count: int = 1) -> datetime:
        """The open time ``count`` candles after (or before, if negative) ``moment``."""
        if self.step is not None:
            return moment + self.step * count
        month_index = moment.year * 12 + moment.month - 1 + count
        return moment.replace(year=month_index // 12, month=month_index % 12 + 1)

    def index(self, moment: datetime) -> int:
        """The candle number of ``moment`` from the anchor (differences count candles)."""
        moment = moment.astimezone(UTC)
        if self.step is None:
            return (moment.year - 1970) * 12 + moment.month - 1
        return (moment - self.anchor) // self.step

    def count_between(self, first: datetime, last: datetime) -> int:
        """How many candles open in ``[first, last]`` (both aligned), inclusive."""
        return self.index(last) - self.index(first) + 1

    def __str__(self) -> str:
        return self.code


_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)

TIMEFRAMES: dict[str, Timeframe] = {
    tf.code: tf
    for tf in (
        Timeframe("1m", _MINUTE),
        Timeframe("3m", 3 * _MINUTE),
        Timeframe("5m", 5 * _MINUTE),
        Timeframe("15m", 15 * _MINUTE),
        Timeframe("30m", 30 * _MINUTE),
        Timeframe("1h", _HOUR),
        Timeframe("2h", 2 * _HOUR),
        Timeframe("4h", 4 * _HOUR),
        Timeframe("6h", 6 * _HOUR),
        Timeframe("8h", 8 * _HOUR),
        Timeframe("12h", 12 * _HOUR),
        Timeframe("1d", _DAY),
        Timeframe("3d", 3 * _DAY),
        Timeframe("1w", 7 * _DAY),
        Timeframe("1M", None),
    )
}


def parse_timeframe(code: str | Timeframe) -> Timeframe:
    """The Timeframe for a code such as ``"1h"``; a ValidationError names the valid ones."""
    if isinstance(code, Timeframe):
        return code
    try:
        return TIMEFRAMES[code]
    except (KeyError, TypeError):
        valid = " ".join(TIMEFRAMES)
        raise ValidationError(
            f"timeframe {code!r} is not valid (one of: {valid})", field="timeframe"
        ) from None
