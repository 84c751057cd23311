"""Synthetic candles: deterministic, realistic-looking values, cheap to generate in millions.

A candle travels as a *native tuple* in the column order of ``candle_io.COLUMNS`` (Decimals and
aware UTC datetimes, what asyncpg's COPY takes), or as an ``OHLCVBar`` built from one when the
library is under test. Values cycle through a small pool of valid price rows, so that seeding
millions of candles does not spend its time constructing Decimals.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from iftb.data.storage import OHLCVBar

EXCHANGE = "binance"
TIMEFRAME = "1m"
STEP = timedelta(minutes=1)
T0 = datetime(2020, 1, 1, tzinfo=UTC)

BATCH_SYMBOL = "BENCH_BTCUSDT"
"""insert_many, upsert_many and get_range."""
ORM_SYMBOL = "BENCH_ORMUSDT"
GAP_SYMBOL = "BENCH_GAPUSDT"
STREAM_SYMBOL = "BENCH_STREAMUSDT"
OWN_SYMBOLS = (BATCH_SYMBOL, ORM_SYMBOL, GAP_SYMBOL, STREAM_SYMBOL)
"""Every series the benchmarks write (outside ``--large``). No exchange lists a symbol with an
underscore, so against an existing database (``--database-url``) these are the benchmark's own
rows, and the only ones it writes or deletes."""

NativeRow = tuple[Any, ...]
"""(symbol, exchange, timeframe, timestamp, open, high, low, close, volume, quote_volume,
trades_count)."""

_POOL_SIZE = 1009


def _price_pool(seed: int) -> list[tuple[Any, ...]]:
    """Valid (open, high, low, close, volume, quote_volume, trades_count) rows."""
    rng = random.Random(seed)
    pool = []
    for _ in range(_POOL_SIZE):
        open_cents = rng.randrange(2_000_000, 7_000_000)
        close_cents = open_cents + rng.randrange(-5_000, 5_000)
        high_cents = max(open_cents, close_cents) + rng.randrange(0, 3_000)
        low_cents = min(open_cents, close_cents) - rng.randrange(0, 3_000)
        volume = Decimal(rng.randrange(1, 10**10)).scaleb(-8)
        quote = (volume * Decimal(close_cents).scaleb(-2)).quantize(Decimal("1e-8"))
        pool.append(
            (
                Decimal(open_cents).scaleb(-2),
                Decimal(high_cents).scaleb(-2),
                Decimal(low_cents).scaleb(-2),
                Decimal(close_cents).scaleb(-2),
                volume,
                quote,
                rng.randrange(0, 5_000),
            )
        )
    return pool


_POOLS = {revision: _price_pool(revision) for revision in (0, 1)}


def native_rows(
    symbol: str,
    first: int,
    count: int,
    *,
    revision: int = 0,
    skip: frozenset[int] = frozenset(),
    timeframe: str = TIMEFRAME,
    step: timedelta = STEP,
    start: datetime = T0,
) -> Iterator[NativeRow]:
    """``count`` consecutive candles ``step`` apart (1m unless told) from candle number
    ``first`` (counted from ``start``), leaving out the numbers in ``skip``. ``revision`` 1 gives
    other values for the same keys (the "changed" rows of an upsert)."""
    pool = _POOLS[revision]
    for number in range(first, first + count):
        if number in skip:
            continue
        yield (symbol, EXCHANGE, timeframe, start + step * number, *pool[number % _POOL_SIZE])


def last_open_time(*counts: int) -> datetime:
    """An upper bound of the open times of series of ``counts`` candles from ``T0`` (with
    room for the holes of a gapped series)."""
    return T0 + STEP * int(max(counts) * 1.1)


def bars(rows: Sequence[NativeRow]) -> list[OHLCVBar]:
    """Validated OHLCVBar records, as a caller of the library would build them."""
    return [OHLCVBar(*row) for row in rows]


@dataclass(frozen=True)
class GappedSeries:
    """A series of ``stored`` candles with holes: what gap detection is run on."""

    symbol: str
    first: int
    span: int
    """Candle numbers from ``first`` to the last stored one, holes included."""
    holes: frozenset[int]

    @property
    def stored(self) -> int:
        return self.span - len(self.holes)

    def rows(self) -> Iterator[NativeRow]:
        return native_rows(self.symbol, self.first, self.span, skip=self.holes)

    @property
    def hole_runs(self) -> int:
        """How many separate runs of missing candles (gaps) there are."""
        return sum(1 for number in self.holes if number - 1 not in self.holes)


def gapped_series(symbol: str, stored: int, *, holes_every: int = 1_000) -> GappedSeries:
    """``stored`` candles with about one hole (1 to 30 missing candles) per ``holes_every``
    stored ones; the first and the last candle are stored, so every hole is inside the series."""
    rng = random.Random(7)
    holes: set[int] = set()
    number = kept = 0
    next_hole = rng.randrange(holes_every // 2, holes_every * 3 // 2)
    while kept < stored:
        if kept == next_hole:
            length = rng.randrange(1, 31)
            holes.update(range(number, number + length))
            number += length
            next_hole += rng.randrange(holes_every // 2, holes_every * 3 // 2)
        kept += 1
        number += 1
    return GappedSeries(symbol, 0, number, frozenset(holes))
