"""OHLCVRepository: candle ingest, reads, gaps, coverage, resampling and retention.

Writes validate the whole batch before anything is sent and run inside a savepoint, so a
rejected batch leaves the caller's unit of work as it was. Reads are Core selects straight into
``OHLCVBar`` records (no ORM identity map, no re-validation). Gaps, coverage and resampling are
computed in SQL; only their few result rows reach Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.sql import Executable

from iftb.data.storage.enums import PriceType
from iftb.data.storage.errors import DuplicateError, ValidationError, translated_errors
from iftb.data.storage.market_models import CandleSeriesModel
from iftb.data.storage.models import OHLCVModel
from iftb.data.storage.records import OHLCVBar
from iftb.data.storage.repositories.base import checked_limit
from iftb.data.storage.repositories.market.candle_analysis import CandleAnalysis
from iftb.data.storage.repositories.market.candle_frames import (
    Series,
    checked_library,
    read_candle_frame,
)
from iftb.data.storage.repositories.market.candle_io import bar_reader, candle_writer, raw_columns
from iftb.data.storage.repositories.market.candle_partitions import (
    Partition,
    delete_candles,
    ensure_partitions,
    ensure_partitions_for,
    list_partitions,
)
from iftb.data.storage.repositories.market.candle_sql import (
    PRICE_TYPE,
    SeriesKey,
    range_condition,
    series_condition,
)
from iftb.data.storage.repositories.market.catalog_upkeep import (
    changing,
    deleting,
    lock_every_series,
    series_opening_by,
    spans_of,
)
from iftb.data.storage.repositories.market.frame_writes import frame_batch
from iftb.data.storage.timeframes import parse_timeframe
from iftb.data.storage.validation import aware_utc, candle_opened_rule

Key = tuple[str, str, str, str, datetime]
_TICK = timedelta(microseconds=1)


class OHLCVRepository(CandleAnalysis):
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
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str = "binance",
        *,
        price_type: str = PriceType.TRADE,
    ) -> list[OHLCVBar]:
        """Candles opening in ``[start, end]`` (both inclusive), oldest first."""
        statement = self._range(symbol, timeframe, start, end, exchange, price_type)
        return await self._bars(statement.order_by(OHLCVModel.timestamp))

    async def get_frame(
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str = "binance",
        *,
        price_type: str = PriceType.TRADE,
        library: str = "pandas",
        exact: bool = False,
    ) -> Any:
        """Candles opening in ``[start, end]`` as a pandas DataFrame indexed by aware UTC open
        time, or a Polars DataFrame sorted by its ``timestamp`` column (``library="polars"``):
        float64 values, or with ``exact=True`` Arrow decimal128(20, 8) ones holding every
        digit. Needs the ``frames`` extra (docs/frames.md)."""
        series = Series(
            symbol,
            exchange,
            parse_timeframe(timeframe).code,
            PRICE_TYPE(price_type).value,
            aware_utc("start", start),
            aware_utc("end", end),
        )
        chosen = checked_library(library)
        with translated_errors():
            connection = await self._session.connection()
            return await read_candle_frame(
                connection, self.dialect, series, library=chosen, exact=exact
            )

    async def upsert_frame(
        self,
        frame: Any,
        symbol: str,
        timeframe: str,
        exchange: str = "binance",
        *,
        price_type: str = PriceType.TRADE,
    ) -> int:
        """Insert or update the candles of a pandas or Polars DataFrame (the shape ``get_frame``
        returns), with the rules of ``upsert_many``; a bad row is a ValidationError naming its
        position and open time, and nothing is written. Returns how many candles were written."""
        batch = frame_batch(frame, symbol, timeframe, exchange, price_type)
        with translated_errors():
            async with self._session.begin_nested():
                connection = await self._session.connection()
                async with changing(connection, batch.spans()):
                    return await batch.write(connection, self.dialect)

    async def stream_range(
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str = "binance",
        *,
        chunk_size: int = 10_000,
        price_type: str = PriceType.TRADE,
    ) -> AsyncIterator[OHLCVBar]:
        """Like ``get_range`` but in constant memory: a server-side cursor on PostgreSQL,
        keyset reads of ``chunk_size`` candles on SQLite (each one index range scan)."""
        chunk_size = checked_limit(chunk_size, "chunk_size")
        statement = self._range(symbol, timeframe, start, end, exchange, price_type).order_by(
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
                page = self._range(symbol, timeframe, after, end, exchange, price_type).order_by(
                    OHLCVModel.timestamp
                )
        with translated_errors():
            result = await self._session.stream(statement.execution_options(yield_per=chunk_size))
            async for partition in result.partitions():
                for row in partition:
                    yield read(row)

    async def get_latest(
        self,
        symbol: str,
        timeframe: str,
        limit: int = 100,
        exchange: str = "binance",
        *,
        price_type: str = PriceType.TRADE,
    ) -> list[OHLCVBar]:
        """The ``limit`` most recent candles, newest first."""
        statement = (
            select(*raw_columns())
            .where(series_condition(symbol, timeframe, exchange, price_type))
            .order_by(OHLCVModel.timestamp.desc())
            .limit(checked_limit(limit))
        )
        return await self._bars(statement)

    async def get_last_timestamp(
        self,
        symbol: str,
        timeframe: str,
        exchange: str = "binance",
        *,
        price_type: str = PriceType.TRADE,
    ) -> datetime | None:
        """Open time of the newest stored candle (where an incremental fetch resumes), from the
        catalog."""
        key = SeriesKey(
            symbol, exchange, parse_timeframe(timeframe).code, PRICE_TYPE(price_type).value
        )
        statement = select(CandleSeriesModel.last_open).where(key.of(CandleSeriesModel))
        last: datetime | None = (await self._execute(statement)).scalar()
        return last

    async def count_range(
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str = "binance",
        *,
        price_type: str = PriceType.TRADE,
    ) -> int:
        """How many candles open in ``[start, end]`` (an index-only count)."""
        window = range_condition(symbol, timeframe, start, end, exchange, price_type)
        statement = select(func.count()).where(window)
        return int((await self._execute(statement)).scalar_one())

    async def delete_range(
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str = "binance",
        *,
        price_type: str = PriceType.TRADE,
    ) -> int:
        """Delete candles opening in ``[start, end]``; returns how many went (retention).

        On PostgreSQL, a partition wholly inside the range that holds only this series is
        dropped rather than emptied row by row.
        """
        start, end = aware_utc("start", start), aware_utc("end", end)
        window = range_condition(symbol, timeframe, start, end, exchange, price_type)
        statement = delete(OHLCVModel).where(window)
        # a partition holding only this series has no candle between ``end`` and the next one
        tf = parse_timeframe(timeframe)
        last_open_covered = tf.shift(tf.floor(end)) - _TICK
        series = SeriesKey.named(symbol, timeframe, exchange, price_type)
        return await self._retain(statement, (start, end), last_open_covered, series)

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

    async def create_partitions_for(self, open_times: Iterable[datetime]) -> int:
        """Create the partitions candles opening at ``open_times`` need, before a unit of work
        writes them (PostgreSQL; on Citus a unit that has written candles cannot make one).
        Returns how many were new."""
        if self.dialect == "sqlite":
            return 0
        with translated_errors():
            connection = await self._session.connection()
            times = [aware_utc("open_times", moment) for moment in open_times]
            return await ensure_partitions_for(connection, times)

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
        series: SeriesKey | None = None,
    ) -> int:
        """Delete ``rows`` by ``statement`` (of one series, or of all); on PostgreSQL, by the
        retention function, which drops the whole partitions inside ``[rows[0], partitions_to]``
        instead. The catalog follows in the same savepoint."""
        with translated_errors():
            async with self._session.begin_nested():
                connection = await self._session.connection()
                if series is None:  # every series: wait for their writers, hold new ones off
                    await lock_every_series(connection)
                    spans = await series_opening_by(connection, rows[1])
                else:
                    spans = {series: rows}
                async with deleting(connection, spans):
                    if self.dialect == "sqlite":
                        deleted = int((await connection.execute(statement)).rowcount)
                    else:
                        deleted = await delete_candles(connection, rows, partitions_to, series)
                return deleted

    # --- internals -------------------------------------------------------------------------

    def _range(
        self,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        exchange: str,
        price_type: str,
    ) -> Select[Any]:
        window = range_condition(symbol, timeframe, start, end, exchange, price_type)
        return select(*raw_columns()).where(window)

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
                async with changing(connection, spans_of(batch)):
                    if upsert:
                        await writer.upsert(connection, batch)
                    else:
                        await writer.insert(connection, batch)

    async def _describe_first_stored(self, batch: list[OHLCVBar]) -> str:
        """Name the first candle of a rejected insert that is already stored."""
        for index, bar in enumerate(batch):
            statement = select(OHLCVModel.id).where(
                series_condition(bar.symbol, bar.timeframe, bar.exchange, bar.price_type),
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
    return (bar.symbol, bar.exchange, bar.timeframe, bar.price_type, bar.timestamp)


def _describe(bar: OHLCVBar) -> str:
    kind = "" if bar.price_type == PriceType.TRADE else f" {bar.price_type}"
    return f"{bar.symbol} {bar.exchange} {bar.timeframe}{kind} {bar.timestamp.isoformat()}"
