"""The figures of the Citus comparison: the same library calls on a plain PostgreSQL database and
on a distributed (Citus) one, timed in turns by ``timing.compare`` so that drift of the shared
machine falls on both sides alike.

The candles are hourly, from 2025-01-01, ``symbols`` series of ``hours`` candles each with a
few holes (so get_gaps has something to find). Their month partitions exist before any timer
(steady-state ingest: no write creates a month). Writes go in batches of ``batch`` candles, one
unit of work (session) per batch, as an ingesting bot would send them.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from itertools import chain

from benchmarks.candles import NativeRow, bars, native_rows
from benchmarks.raw_postgres import RawPostgres
from benchmarks.timing import Action, Case, Samples, compare
from iftb.data.storage import CandleCatalogRepository, DatabaseManager, OHLCVBar, OHLCVRepository

START = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(hours=1)
TIMEFRAME = "1h"
HOLE_EVERY = 500
HOLE_LENGTH = 3
"""The last ``HOLE_LENGTH`` hours of every ``HOLE_EVERY`` are missing from every series."""


@dataclass(frozen=True)
class Workload:
    """How much each figure moves."""

    symbols: int = 100
    hours: int = 2_000
    batch: int = 10_000
    """Candles per insert_many / upsert_many call (one session each)."""
    repetitions: int = 5
    calls: int = 20
    """get_range / get_gaps calls per timed repetition (one call takes milliseconds)."""

    @cached_property
    def holes(self) -> frozenset[int]:
        return frozenset(h for h in range(self.hours) if h % HOLE_EVERY >= HOLE_EVERY - HOLE_LENGTH)

    @cached_property
    def rows(self) -> int:
        return self.symbols * (self.hours - len(self.holes))

    @cached_property
    def gaps(self) -> int:
        """Gaps per series (holes followed by a stored candle)."""
        return sum(1 for h in self.holes if h + 1 < self.hours and h + 1 not in self.holes)


CaseOf = Callable[["Side"], Case]
SetupOf = Callable[["Side"], Action]
CallOf = Callable[["Side"], Awaitable[None]]
Plan = list[tuple[str, int, bool, CaseOf]]
"""(figure, rows or calls per repetition, whether it is a rate, the case of each side)."""

QUICK_WORKLOAD = Workload(symbols=4, hours=1_500, batch=1_000, repetitions=2, calls=3)


@dataclass
class Side:
    """One database under test, through the library and a bare asyncpg connection (setup)."""

    name: str
    manager: DatabaseManager
    raw: RawPostgres
    next_month: datetime
    """The first month with no partition yet: what the next "creating a month" creates."""


@dataclass(frozen=True)
class Measured:
    """One figure on both sides. Rates are ``amount`` rows per repetition; times are per call
    (``amount`` calls per repetition), shown in milliseconds."""

    figure: str
    plain: Samples
    citus: Samples
    amount: int
    rate: bool

    @property
    def unit(self) -> str:
        return "rows/s" if self.rate else "ms per call"

    def value(self, samples: Samples) -> float:
        if self.rate:
            return self.amount / samples.median
        return samples.median * 1000 / self.amount

    @property
    def ratio(self) -> float:
        """Citus's figure over plain PostgreSQL's, in the figure's own unit."""
        return self.value(self.citus) / self.value(self.plain)


def symbol(number: int) -> str:
    return f"BENCH_C{number:03d}"


def series_rows(work: Workload, *, hours: range, revision: int = 0) -> Iterator[NativeRow]:
    """Every series' candles in ``hours``, symbol after symbol, holes left out."""
    for s in range(work.symbols):
        yield from native_rows(
            symbol(s),
            hours.start,
            len(hours),
            revision=revision,
            skip=work.holes,
            timeframe=TIMEFRAME,
            step=STEP,
            start=START,
        )


def batches(rows: Iterator[NativeRow], size: int) -> list[list[OHLCVBar]]:
    records = bars(list(rows))
    return [records[i : i + size] for i in range(0, len(records), size)]


async def prepare(side: Side, work: Workload) -> None:
    """The partitions of every candle written, made before any timer; a warm-up write."""
    await side.raw.ensure_partitions(START, START + STEP * work.hours)
    await _write(side, batches(series_rows(work, hours=range(24)), work.batch), upsert=False)
    await side.raw.clear_candles()


async def measure(plain: Side, citus: Side, work: Workload) -> list[Measured]:
    """Every figure, in the order of the report; the table is left holding every candle.

    The writes' batches (hundreds of thousands of records) are garbage before the reads are
    timed: left alive, every full collection during a read would walk them too.
    """
    figures = await _run(plain, citus, work, _writes(work))
    gc.collect()
    for side in (plain, citus):  # what autovacuum would have done after the writes
        await side.raw.execute("VACUUM ANALYZE ohlcv")
        # the writes' setups emptied and seeded the candles around the library (raw TRUNCATE
        # and COPY): the catalog that get_gaps and get_coverage read is rebuilt, as a user would
        async with side.manager.get_session() as session:
            await CandleCatalogRepository(session).rebuild()
    return figures + await _run(plain, citus, work, _reads(work))


def _writes(work: Workload) -> Plan:
    half = work.hours // 2
    inserted = batches(series_rows(work, hours=range(work.hours)), work.batch)
    changed = batches(  # the stored half with other values, and the other half new
        chain(
            series_rows(work, hours=range(half), revision=1),
            series_rows(work, hours=range(half, work.hours)),
        ),
        work.batch,
    )
    stored_half = list(series_rows(work, hours=range(half)))

    def half_stored(side: Side) -> Action:  # the upsert's starting state
        async def setup() -> None:
            await side.raw.clear_candles()
            await side.raw.load(stored_half)

        return setup

    def writes(batches: list[list[OHLCVBar]], upsert: bool, setup: SetupOf) -> CaseOf:
        return lambda side: Case(lambda: _write(side, batches, upsert=upsert), setup(side))

    return [
        ("insert_many", work.rows, True, writes(inserted, False, lambda s: s.raw.clear_candles)),
        ("upsert_many (half the keys stored)", work.rows, True, writes(changed, True, half_stored)),
    ]


def _reads(work: Workload) -> Plan:
    def calls(count: int, call: CallOf) -> CaseOf:
        return lambda side: Case(lambda: _calls(count, lambda: call(side)))

    month_end = START + timedelta(days=31) - STEP
    in_month = _stored(work, month_end)  # the checks compare with numbers known before timing
    rows = work.rows
    return [
        (
            f"get_range (one symbol, one month: {in_month} candles)",
            work.calls,
            False,
            calls(work.calls, lambda side: _range(side, month_end, in_month)),
        ),
        (
            f"get_gaps (one series of {rows // work.symbols:,} candles, {work.gaps} gaps)",
            work.calls,
            False,
            calls(work.calls, lambda side: _gaps(side, work)),
        ),
        (
            f"get_coverage (all {work.symbols} series, {rows:,} candles)",
            1,
            False,
            calls(1, lambda side: _coverage(side, work)),
        ),
        ("creating a month (create_partitions: one new month)", 1, False, calls(1, create_month)),
    ]


async def _run(plain: Side, citus: Side, work: Workload, plan: Plan) -> list[Measured]:
    figures = []
    for figure, amount, rate, case in plan:
        if not rate:  # one untimed call each first: plans, caches, the first DDL of a session
            for side in (plain, citus):
                await case(side).action()
        plain_samples, citus_samples = await compare(work.repetitions, case(plain), case(citus))
        figures.append(Measured(figure, plain_samples, citus_samples, amount, rate))
    return figures


async def create_month(side: Side) -> None:
    """``OHLCVRepository.create_partitions`` up to the first month without a partition."""
    async with side.manager.get_session() as session:
        created = await OHLCVRepository(session).create_partitions(side.next_month)
    if created != 1:
        raise RuntimeError(f"{side.name}: create_partitions made {created} partitions, not 1")
    side.next_month = _month_after(side.next_month)


def first_month_after(moment: datetime) -> datetime:
    """Midnight UTC of the first day of the month after ``moment``'s."""
    return _month_after(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def _month_after(first_day: datetime) -> datetime:
    return (first_day + timedelta(days=32)).replace(day=1)


async def _write(side: Side, batches: list[list[OHLCVBar]], *, upsert: bool) -> None:
    for batch in batches:
        async with side.manager.get_session() as session:
            repository = OHLCVRepository(session)
            await (repository.upsert_many(batch) if upsert else repository.insert_many(batch))


async def _calls(count: int, call: Action) -> None:
    for _ in range(count):
        await call()


async def _range(side: Side, end: datetime, expected: int) -> None:
    async with side.manager.get_session(read_only=True) as session:
        found = await OHLCVRepository(session).get_range(symbol(0), TIMEFRAME, START, end)
    if len(found) != expected:
        raise RuntimeError(f"{side.name}: get_range read {len(found)} candles")


async def _gaps(side: Side, work: Workload) -> None:
    async with side.manager.get_session(read_only=True) as session:
        found = await OHLCVRepository(session).get_gaps(symbol(0), TIMEFRAME)
    if len(found) != work.gaps:
        raise RuntimeError(f"{side.name}: get_gaps found {len(found)} gaps, not {work.gaps}")


async def _coverage(side: Side, work: Workload) -> None:
    async with side.manager.get_session(read_only=True) as session:
        series = await OHLCVRepository(session).get_coverage()
    counted = sum(found.count for found in series)
    if (len(series), counted) != (work.symbols, work.rows):
        raise RuntimeError(f"{side.name}: get_coverage saw {len(series)} series, {counted} rows")


def _stored(work: Workload, end: datetime) -> int:
    hours = int((end - START) / STEP) + 1
    return sum(1 for h in range(min(hours, work.hours)) if h not in work.holes)
