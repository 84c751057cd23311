"""Timeframe parsing, alignment and stepping, including calendar months and Monday weeks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iftb.data.storage import TIMEFRAMES, ValidationError, parse_timeframe

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def test_every_documented_timeframe_parses() -> None:
    codes = [
        "1m",
        "3m",
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "3d",
        "1w",
        "1M",
    ]
    assert [parse_timeframe(code).code for code in codes] == codes
    assert set(TIMEFRAMES) == set(codes)


@pytest.mark.parametrize("code", ["2m", "1H", "", "60", "1mo", None])
def test_unknown_timeframe_is_a_validation_error_listing_the_valid_ones(code: object) -> None:
    with pytest.raises(ValidationError, match="is not valid.*1m 3m"):
        parse_timeframe(code)  # type: ignore[arg-type]


def test_month_floor_is_the_first_of_the_month() -> None:
    month = parse_timeframe("1M")
    assert month.floor(datetime(2024, 2, 29, 23, 59, tzinfo=UTC)) == datetime(
        2024, 2, 1, tzinfo=UTC
    )


def test_month_steps_across_year_ends_and_short_months() -> None:
    month = parse_timeframe("1M")
    assert month.shift(datetime(2023, 12, 1, tzinfo=UTC)) == datetime(2024, 1, 1, tzinfo=UTC)
    assert month.shift(datetime(2024, 1, 1, tzinfo=UTC), 13) == datetime(2025, 2, 1, tzinfo=UTC)
    assert month.shift(datetime(2024, 3, 1, tzinfo=UTC), -1) == datetime(2024, 2, 1, tzinfo=UTC)
    assert (
        month.count_between(datetime(2023, 11, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
        == 4
    )


def test_weeks_open_on_monday() -> None:
    week = parse_timeframe("1w")
    floored = week.floor(datetime(2024, 1, 4, 15, tzinfo=UTC))  # a Thursday
    assert floored == datetime(2024, 1, 1, tzinfo=UTC)
    assert floored.weekday() == 0


def test_three_day_candles_count_from_the_epoch() -> None:
    three_days = parse_timeframe("3d")
    assert three_days.is_aligned(datetime(1970, 1, 4, tzinfo=UTC))
    assert not three_days.is_aligned(datetime(1970, 1, 5, tzinfo=UTC))


def test_floor_converts_other_zones_to_utc() -> None:
    hour = parse_timeframe("1h")
    plus_two = datetime(2024, 5, 1, 3, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert hour.floor(plus_two) == datetime(2024, 5, 1, 3, tzinfo=UTC)


@pytest.mark.parametrize("code", list(TIMEFRAMES))
@given(moment=moments, steps=st.integers(min_value=-500, max_value=500))
def test_shift_moves_the_candle_index_by_the_step_count(
    code: str, moment: datetime, steps: int
) -> None:
    timeframe = parse_timeframe(code)
    start = timeframe.floor(moment)
    shifted = timeframe.shift(start, steps)
    assert timeframe.is_aligned(start)
    assert timeframe.is_aligned(shifted)
    assert timeframe.index(shifted) - timeframe.index(start) == steps
    assert timeframe.floor(moment) <= moment < timeframe.shift(start)
