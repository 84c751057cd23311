"""FundingRateRepository: the funding-rate history of perpetuals, one rate per funding time.

Writes are idempotent upserts (an exchange's history re-imported changes nothing; a corrected
rate replaces the stored one), checked whole before anything is sent. Gaps are measured against
the exchange's funding interval (8 hours on most Binance perpetuals, 4 or 1 on some), which the
caller names, since it is the exchange's and may change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import select

from iftb.data.storage.errors import ValidationError
from iftb.data.storage.market_models import FundingRateModel
from iftb.data.storage.market_records import FundingRate
from iftb.data.storage.records import Gap
from iftb.data.storage.repositories.base import Repository, all_records, checked_limit
from iftb.data.storage.validation import aware_utc

_KEY = ("exchange", "symbol", "funding_time")
_COLUMNS = FundingRateModel.__table__.c
_VALUES = (_COLUMNS.symbol, _COLUMNS.funding_time, _COLUMNS.rate, _COLUMNS.exchange)
_READ = (*_VALUES, _COLUMNS.mark_price)


class FundingRateRepository(Repository):
    """Funding rates, unique per (exchange, symbol, funding time)."""

    async def upsert_many(self, rates: Sequence[FundingRate]) -> int:
        """Insert rates, or replace the stored ones of the same time (the last in the batch
        wins); returns how many distinct rates were written. A batch holding anything but
        FundingRate records is refused whole, naming the row."""
        latest: dict[tuple[str, str, datetime], FundingRate] = {}
        for index, rate in enumerate(rates):
            if type(rate) is not FundingRate:
                raise ValidationError(
                    f"expected a FundingRate, got {type(rate).__name__}", field="rate", index=index
                )
            latest[(rate.exchange, rate.symbol, rate.funding_time)] = rate
        if not latest:
            return 0
        rows = [
            {name: getattr(rate, name) for name in (*_KEY, "rate", "mark_price")}
            for _, rate in sorted(latest.items())
        ]
        statement = self._insert(FundingRateModel)
        statement = statement.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={"rate": statement.excluded.rate, "mark_price": statement.excluded.mark_price},
        )
        await self._write(statement, rows)
        return len(rows)

    async def get_range(
        self, symbol: str, start: datetime, end: datetime, exchange: str = "binance"
    ) -> list[FundingRate]:
        """Rates with funding times in ``[start, end]``, oldest first."""
        statement = (
            select(*_READ)
            .where(
                _COLUMNS.exchange == exchange,
                _COLUMNS.symbol == symbol,
                _COLUMNS.funding_time.between(aware_utc("start", start), aware_utc("end", end)),
            )
            .order_by(_COLUMNS.funding_time)
        )
        return all_records(FundingRate, await self._execute(statement))

    async def get_latest(
        self, symbol: str, exchange: str = "binance", limit: int = 1
    ) -> list[FundingRate]:
        """The ``limit`` most recent rates, newest first."""
        statement = (
            select(*_READ)
            .where(_COLUMNS.exchange == exchange, _COLUMNS.symbol == symbol)
            .order_by(_COLUMNS.funding_time.desc())
            .limit(checked_limit(limit))
        )
        return all_records(FundingRate, await self._execute(statement))

    async def get_gaps(
        self,
        symbol: str,
        exchange: str = "binance",
        *,
        interval: timedelta = timedelta(hours=8),
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Gap]:
        """Funding times missing between the stored ones (every ``interval``), or within
        ``[start, end]`` when given — then missing ones at the window's edges count too."""
        if not isinstance(interval, timedelta) or interval <= timedelta(0):
            raise ValidationError(
                f"interval: must be a positive duration (got {interval!r})", field="interval"
            )
        lower = aware_utc("start", start) if start is not None else None
        upper = aware_utc("end", end) if end is not None else None
        statement = select(_COLUMNS.funding_time).where(
            _COLUMNS.exchange == exchange, _COLUMNS.symbol == symbol
        )
        if lower is not None:
            statement = statement.where(_COLUMNS.funding_time >= lower)
        if upper is not None:
            statement = statement.where(_COLUMNS.funding_time <= upper)
        times = list((await self._execute(statement.order_by(_COLUMNS.funding_time))).scalars())
        return _gaps(times, interval, lower, upper)


def _gaps(
    times: list[datetime], interval: timedelta, lower: datetime | None, upper: datetime | None
) -> list[Gap]:
    """The runs of missing funding times: between neighbours more than an interval apart, and
    between the window's edges and the first and last stored time."""
    if not times:
        if lower is None or upper is None or upper < lower:
            return []
        return [_gap(lower, upper, interval)]
    gaps = []
    if lower is not None and times[0] - lower >= interval:
        gaps.append(_gap(lower, times[0] - interval, interval))
    for earlier, later in pairwise(times):
        if later - earlier > interval:
            gaps.append(_gap(earlier + interval, later - interval, interval))
    if upper is not None and upper - times[-1] >= interval:
        gaps.append(_gap(times[-1] + interval, upper, interval))
    return gaps


def _gap(first: datetime, last: datetime, interval: timedelta) -> Gap:
    return Gap(start=first, end=last, missing=(last - first) // interval + 1)
