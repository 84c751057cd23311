"""Concurrent writers: tasks on both backends, and two processes on one SQLite file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from iftb.data.storage import DatabaseManager, OHLCVBar, OHLCVRepository, TradeModel

T0 = datetime(2024, 5, 1, tzinfo=UTC)
KEYS = 1_000
ROUNDS = 5


def version(key: int, round_: int) -> OHLCVBar:
    """The candle every writer writes for ``key`` in ``round_``."""
    price = Decimal(1000 + round_ * 10) + Decimal(key) / 1000
    return OHLCVBar(
        "BTCUSDT", "binance", "1m", T0 + timedelta(minutes=key), price, price + 1, price - 1,
        price, Decimal(round_),
    )  # fmt: skip


async def test_overlapping_upserts_from_many_tasks_end_last_writer_wins(
    db: DatabaseManager,
) -> None:
    writers = 4 if db.is_sqlite else 8
    span = KEYS // writers * 3  # each writer's keys overlap both neighbours'
    barrier = asyncio.Barrier(writers)

    async def writer(index: int) -> None:
        keys = [(index * KEYS // writers + k) % KEYS for k in range(span)]
        for round_ in range(ROUNDS):
            await barrier.wait()  # every round starts together: maximum contention
            batch = [version(key, round_) for key in reversed(keys)]  # any order in
            async with db.get_session() as session:
                await OHLCVRepository(session).upsert_many(batch)

    await asyncio.gather(*(writer(i) for i in range(writers)))

    async with db.get_session() as session:
        stored = await OHLCVRepository(session).get_range(
            "BTCUSDT", "1m", T0, T0 + timedelta(minutes=KEYS)
        )
    assert stored == [version(key, ROUNDS - 1) for key in range(KEYS)]


WRITER_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal
    from iftb.data.storage import DatabaseManager, OHLCVBar, OHLCVRepository, Trade, TradeRepository

    T0 = datetime(2024, 5, 1, tzinfo=UTC)

    def bar(key):
        price = Decimal(1000) + Decimal(key) / 1000
        return OHLCVBar("ETHUSDT", "binance", "1m", T0 + timedelta(minutes=key),
                        price, price + 1, price - 1, price, Decimal(1))

    async def main(url, name, first):
        async with DatabaseManager(url) as db:
            for round_ in range(30):
                async with db.get_session() as session:
                    await OHLCVRepository(session).upsert_many(
                        [bar(k) for k in range(first, first + 300)])
                async with db.get_session() as session:
                    await TradeRepository(session).insert(Trade(
                        trade_id=f"{name}-{round_}", symbol="ETHUSDT", exchange="binance",
                        side="long", action="open", entry_price=Decimal(100), quantity=Decimal(1)))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_two_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with DatabaseManager(url):  # migrate once, before the writers race
        pass
    script = tmp_path / "writer.py"
    script.write_text(WRITER_PROCESS)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            url,
            name,
            str(first),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, first in (("a", 0), ("b", 150))
    ]
    results = [await process.communicate() for process in processes]
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert b"database is locked" not in stderr

    async with DatabaseManager(url) as db, db.get_session() as session:
        candles = await OHLCVRepository(session).get_coverage("ETHUSDT")
        trades = await session.scalar(select(func.count()).select_from(TradeModel))
    assert [(c.count, c.missing) for c in candles] == [(450, 0)]
    assert trades == 60  # every non-idempotent insert of both processes, once
