"""Trade statistics and the daily rollup over many closed trades: the time only.

The trades are seeded with the raw driver (COPY / executemany), all closed on one UTC day, so
``get_statistics(days=3650)`` and ``rollup(day)`` both run over every one of them: the worst
day a rollup could meet. There is no raw baseline: these are single set-based SQL statements
either way.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from benchmarks.config import Sizes
from benchmarks.databases import Database
from benchmarks.results import BackendResults, Figure
from benchmarks.timing import Case, repeat
from iftb.data.storage import DailyPerformanceRepository, TradeRepository

_MONEY = Decimal("1e-8")
_PERCENT = Decimal("1e-4")
_FEE_RATE = Decimal("0.0004")
STARTING_BALANCE = Decimal("100000")


def closed_trades(count: int, day: date) -> Iterator[tuple[Any, ...]]:
    """``count`` closed trades (``sql.TRADE_COLUMNS`` order) exiting on ``day``, with the PnL
    computed by the library's convention: long (exit − entry) × qty − fees, short reversed."""
    rng = random.Random(11)
    opens = datetime.combine(day, time(), tzinfo=UTC)
    spacing = timedelta(days=1) / count
    for number in range(count):
        exit_time = opens + spacing * number
        entry_time = exit_time - timedelta(minutes=rng.randrange(1, 600))
        side = "long" if number % 2 else "short"
        entry = Decimal(rng.randrange(2_000_000, 7_000_000)).scaleb(-2)
        exit_ = entry + Decimal(rng.randrange(-50_000, 50_001)).scaleb(-2)
        quantity = Decimal(rng.randrange(1, 100_000)).scaleb(-5)
        leverage = Decimal(rng.choice((1, 2, 5, 10)))
        fee = ((entry + exit_) * quantity * _FEE_RATE).quantize(_MONEY, ROUND_HALF_UP)
        move = exit_ - entry if side == "long" else entry - exit_
        pnl = (move * quantity - fee).quantize(_MONEY, ROUND_HALF_UP)
        pct = (pnl / (entry * quantity / leverage) * 100).quantize(_PERCENT, ROUND_HALF_UP)
        action = "liquidated" if number % 97 == 0 else "close"
        yield (
            f"bench-{number}",
            "BTCUSDT",
            "binance",
            side,
            action,
            entry,
            exit_,
            quantity,
            leverage,
            pnl,
            pct,
            fee,
            entry_time,
            exit_time,
        )


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    """Seed the trades, then time get_statistics and rollup."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    await db.raw.load_trades(closed_trades(sizes.trades, day))
    await db.raw.execute("ANALYZE trades")
    totals: dict[str, int] = {}

    async def statistics() -> None:
        async with db.manager.get_session() as session:
            found = await TradeRepository(session).get_statistics(days=3650)
        totals["statistics"] = found.total_trades

    async def rollup() -> None:
        async with db.manager.get_session() as session:
            row = await DailyPerformanceRepository(session).rollup(
                day, starting_balance=STARTING_BALANCE
            )
        totals["rollup"] = row.total_trades

    await statistics()  # warm-up: compiled statements, connection
    statistics_samples = await repeat(sizes.repetitions, Case(statistics))
    rollup_samples = await repeat(sizes.repetitions, Case(rollup))
    if totals != {"statistics": sizes.trades, "rollup": sizes.trades}:
        raise RuntimeError(f"trade statistics counted {totals}, expected {sizes.trades}")
    out.checks.append(f"get_statistics and rollup each counted all {sizes.trades:,} trades")
    note = "all trades closed on one day (worst case for a rollup)"
    out.figures += [
        Figure("TradeRepository.get_statistics", sizes.trades, statistics_samples, None, note=note),
        Figure("DailyPerformanceRepository.rollup", sizes.trades, rollup_samples, None, note=note),
    ]
