"""OHLCVRepository: candle ingest, reads, gaps, coverage, resampling and retention.

Writes validate the whole batch before anything is sent and run inside a savepoint, so a
rejected batch leaves the caller's unit of work as it was. Reads are Core selects straight into
``OHLCVBar`` records (no ORM identity map, no re-validation). Gaps, coverage and resampling are
computed in SQL; only their few result rows reach Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, func, select
from sqlalchemy.sql import ColumnElement, Executable

from iftb.data.storage.errors import DuplicateError, ValidationError, translated_errors
from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.records import Gap, OHLCVBar, ResampledBar, SeriesCoverage
from iftb.data.storage.repositories.base import Repository, checked_limit
from iftb.data.storage.repositories.market.candle_io import bar_reader, candle_writer, raw_columns
from iftb.data.storage.repositories.market.candle_partitions import (
    Partition,
    delete_candles,
    ensure_partitions,
    list_partitions,
)
from iftb.data.storage.repositories.market.candle_sql import gap_rows, resample_rows
from iftb.data.storage.timeframes import Timeframe, parse_timeframe
from iftb.data.storage.validation import aware_utc, candle_opened_rule

Key = tuple[str, str, str, datetime]
_TICK = timedelta(microseconds=1)


class OHLCVRepository(Repository):
    """Candles, unique per (symbol, exchange, timeframe, timestamp)."""

    async def insert_many(self, bars: Sequence[OHLCVBar]) -> int:
        """Insert new candles; any candle already stored is a DuplicateError and nothing is written.

        Returns:
            The number of candles inserted.
        """
        batch = _checked_batch(bars)
        first_seen: dict[Key, int] = {}
        for index, bar in enumerate(batch):
            earlier = first_seen.setdefault(_key(bar), index)
            if earlier != index:
                raise DuplicateError(
                    f"rows {earlier} and {index} are the same candle: {_describe(bar)}"
                )
        try:
            await self._bulk_write(batch, upsert=False)
        except DuplicateError:
            raise DuplicateError(await self._describe_first_stored(batch)) from None
        return len(batch)

    async def upsert_many(self, bars: Sequence[OHLCVBar]) -> int:
        """Insert candles, or update the stored ones with the same key (the last one in the batch
        wins). Rows are written in key order, so concurrent upserters cannot deadlock.

        Returns:
            The number of distinct candles written (inserted or updated).
        """
        latest: dict[Key, OHLCVBar] = {}
        for bar in _checked_batch(bars):
            latest[_key(bar)] = bar
        batch = [latest[key] for key in sorted(latest)]
        await self._bulk_write(batch, upsert=True)
        return len(batch)

    async def get_range(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str = "binance"
    ) -> list[OHLCVBar]:
        """Candles opening in ``[start, end]`` (both inclusive), oldest first."""
        statement = self._range(symbol, timeframe, start, end, exchange)
        return await self._bars(statement.order_by(OHLCVModel.timestamp))

    async def stream_range(
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str = "binance",
        *,
        chunk_size: int = 10_000,
    ) -> AsyncIterator[OHLCVBar]:
        """Like ``get_range`` but in constant memory: a server-side cursor on PostgreSQL,
        keyset reads of ``chunk_size`` candles on SQLite (each one index range scan)."""
        chunk_size = checked_limit(chunk_size, "chunk_size")
        statement = self._range(symbol, timeframe, start, end, exchange).order_by(
            OHLCVModel.timestamp
        )
        read = bar_reader(self.dialect)
        if self.dialect == "sqlite":
            page = statement
            while True:
                bars = await self._bars(page.limit(chunk_size))
                for bar in bars:
                    yield bar
                if len(bars) < chunk_size:
                    return
                # the next page starts after the last candle: one index seek, not a re-scan
                after = bars[-1].timestamp + _TICK
                page = self._range(symbol, timeframe, after, end, exchange).order_by(
                    OHLCVModel.timestamp
                )
        with translated_errors():
            result = await self._session.stream(statement.execution_options(yield_per=chunk_size))
            async for partition in result.partitions():
                for row in partition:
                    yield read(row)

    async def get_latest(
        self, symbol: str, timeframe: str, limit: int = 100, exchange: str = "binance"
    ) -> list[OHLCVBar]:
        """The ``limit`` most recent candles, newest first."""
        statement = (
            select(*raw_columns())
            .where(_series(symbol, timeframe, exchange))
            .order_by(OHLCVModel.timestamp.desc())
            .limit(checked_limit(limit))
        )
        return await self._bars(statement)

    async def get_last_timestamp(
        self, symbol: str, timeframe: str, exchange: str = "binance"
    ) -> datetime | None:
        """Open time of the newest stored candle (where an incremental fetch resumes)."""
        statement = select(func.max(OHLCVModel.timestamp)).where(
            _series(symbol, timeframe, exchange)
        )
        last: datetime | None = (await self._execute(statement)).scalar()
        return last

    async def count_range(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str = "binance"
    ) -> int:
        """How many candles open in ``[start, end]`` (an index-only count)."""
        statement = select(func.count()).where(_in_range(symbol, timeframe, start, end, exchange))
        return int((await self._execute(statement)).scalar_one())

    async def delete_range(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str = "binance"
    ) -> int:
        """Delete candles opening in ``[start, end]``; returns how many went (retention).

        On PostgreSQL, a partition wholly inside the range that holds only this series is
        dropped rather than emptied row by row.
        """
        start, end = aware_utc("start", start), aware_utc("end", end)
        statement = delete(OHLCVModel).where(_in_range(symbol, timeframe, start, end, exchange))
        # a partition holding only this series has no candle between ``end`` and the next one
        tf = parse_timeframe(timeframe)
        last_open_covered = tf.shift(tf.floor(end)) - _TICK
        return await self._retain(
            statement, (start, end), last_open_covered, (symbol, exchange, timeframe)
        )

    async def purge(self, older_than: datetime) -> int:
        """Delete the candles of every series opening before ``older_than``; returns how many
        went. On PostgreSQL whole partitions are dropped, and only the rest is deleted."""
        cutoff = aware_utc("older_than", older_than)
        statement = delete(OHLCVModel).where(OHLCVModel.timestamp < cutoff)
        rows = (datetime.min.replace(tzinfo=UTC), cutoff - _TICK)
        return await self._retain(statement, rows, rows[1])

    async def create_partitions(self, until: datetime) -> int:
        """Create the candle partitions from now to ``until`` ahead of time (PostgreSQL; a
        write reaching a month without one creates it too). Returns how many were new."""
        if self.dialect == "sqlite":
            return 0
        with translated_errors():
            connection = await self._session.connection()
            return await ensure_partitions(connection, datetime.now(UTC), aware_utc("until", until))

    async def get_partitions(self) -> list[Partition]:
        """The candle table's partitions, oldest first (none on SQLite)."""
        if self.dialect == "sqlite":
            return []
        with translated_errors():
            return await list_partitions(await self._session.connection())

    async def _retain(
        self,
        statement: Executable,
        rows: tuple[datetime, datetime],
        partitions_to: datetime,
        series: tuple[str, str, str] | None = None,
    ) -> int:
        """Delete ``rows`` by ``statement``; on PostgreSQL, by the retention function, which
        drops the whole partitions inside ``[rows[0], partitions_to]`` instead."""
        with translated_errors():
            async with self._session.begin_nested():
                connection = await self._session.connection()
                if self.dialect == "sqlite":
                    return int((await connection.execute(statement)).rowcount)
                return await delete_candles(connection, rows, partitions_to, series)

    async def get_gaps(
        self,
        symbol: str,
        timeframe: str,
        exchange: str = "binance",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Gap]:
        """Runs of missing candles between the first and last stored candle, or within
        ``[start, end]`` when given — then missing candles at the window's edges count too."""
        tf = parse_timeframe(timeframe)
        lower = tf.ceil(aware_utc("start", start)) if start is not None else None
        upper = tf.floor(aware_utc("end", end)) if end is not None else None
        window = _window(lower, upper)
        series = _series(symbol, timeframe, exchange)
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
    ) -> list[SeriesCoverage]:
        """Per stored series: first and last candle, count, expected count (and so missing)."""
        series = (OHLCVModel.symbol, OHLCVModel.exchange, OHLCVModel.timeframe)
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
        for column, value in zip(series, (symbol, exchange, timeframe), strict=True):
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
    ) -> list[ResampledBar]:
        """Larger candles built in SQL from the stored smaller ones opening in ``[start, end]``.

        Open is the first source candle's open, close the last one's close, high the max, low
        the min, volumes and trade counts summed. A target candle with source candles missing is
        partial: excluded unless ``include_partial``, and then flagged (``complete`` is False).
        """
        source, target = parse_timeframe(source_timeframe), parse_timeframe(target_timeframe)
        _check_resample(source, target)
        window = _in_range(symbol, source_timeframe, start, end, exchange)
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
                }
            )
            _check_storable(bar)
            resampled.append(ResampledBar(bar, row["source_count"], expected))
        return resampled

    # --- internals -------------------------------------------------------------------------

    def _range(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str
    ) -> Select[Any]:
        return select(*raw_columns()).where(_in_range(symbol, timeframe, start, end, exchange))

    async def _bars(self, statement: Select[Any]) -> list[OHLCVBar]:
        """Run a select of ``raw_columns()`` and read its rows into records."""
        read = bar_reader(self.dialect)
        return [read(row) for row in await self._execute(statement)]

    async def _bulk_write(self, batch: list[OHLCVBar], *, upsert: bool) -> None:
        if not batch:
            return
        writer = candle_writer(self.dialect)
        with translated_errors():
            async with self._session.begin_nested():
                connection = await self._session.connection()
                if upsert:
                    await writer.upsert(connection, batch)
                else:
                    await writer.insert(connection, batch)

    async def _describe_first_stored(self, batch: list[OHLCVBar]) -> str:
        """Name the first candle of a rejected insert that is already stored."""
        for index, bar in enumerate(batch):
            statement = select(OHLCVModel.id).where(
                _series(bar.symbol, bar.timeframe, bar.exchange),
                OHLCVModel.timestamp == bar.timestamp,
            )
            if (await self._execute(statement)).first() is not None:
                return f"row {index}: candle already stored: {_describe(bar)}; nothing written"
        return "a candle of the batch is already stored; nothing written"


def _checked_batch(bars: Sequence[OHLCVBar]) -> list[OHLCVBar]:
    """The batch as a list, every item an OHLCVBar (validated when it was built) that opens no
    later than the current candle of its timeframe (checked now, at write time)."""
    batch = list(bars)
    opened = candle_opened_rule()
    for index, bar in enumerate(batch):
        if type(bar) is not OHLCVBar:
            raise ValidationError(
                f"expected an OHLCVBar, got {type(bar).__name__}", field="bar", index=index
            )
        try:
            opened(bar.timeframe, bar.timestamp)
        except ValidationError as exc:
            raise exc.at_index(index) from None
    return batch


def _key(bar: OHLCVBar) -> Key:
    return (bar.symbol, bar.exchange, bar.timeframe, bar.timestamp)


def _describe(bar: OHLCVBar) -> str:
    return f"{bar.symbol} {bar.exchange} {bar.timeframe} {bar.timestamp.isoformat()}"


def _series(symbol: str, timeframe: str, exchange: str) -> ColumnElement[bool]:
    return and_(
        OHLCVModel.symbol == symbol,
        OHLCVModel.exchange == exchange,
        OHLCVModel.timeframe == parse_timeframe(timeframe).code,
    )


def _in_range(
    symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str
) -> ColumnElement[bool]:
    """One series' candles opening in ``[start, end]``: a single range of the key index."""
    return and_(
        _series(symbol, timeframe, exchange),
        OHLCVModel.timestamp.between(aware_utc("start", start), aware_utc("end", end)),
    )


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
