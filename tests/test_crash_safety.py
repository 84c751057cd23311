"""A writer killed with SIGKILL in the middle of a large ``upsert_many``: afterwards the data is
the old or the new version of the whole batch, never a mix, and the database opens as is."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import func, select

from iftb.data.storage import DatabaseManager, OHLCVModel

ROWS = 200_000

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal
    from iftb.data.storage import DatabaseManager, OHLCVBar, OHLCVRepository

    T0 = datetime(2020, 1, 1, tzinfo=UTC)

    async def main(url, rows, version):
        price = Decimal(version)
        bars = [OHLCVBar("BTCUSDT", "binance", "1m", T0 + timedelta(minutes=m),
                         price, price, price, price, Decimal(version)) for m in range(rows)]
        async with DatabaseManager(url) as db:
            async with db.get_session() as session:
                print("writing", flush=True)
                await OHLCVRepository(session).upsert_many(bars)
        print("done", flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


async def run_writer(script: Path, url: str, version: int, kill_after: float | None) -> bool:
    """Run the writer; with ``kill_after``, SIGKILL it that long after it starts writing.
    Returns whether it was killed before finishing."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, str(ROWS), str(version), stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    assert await process.stdout.readline() == b"writing\n"
    if kill_after is None:
        assert await process.wait() == 0
        return False
    await asyncio.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    rest = await process.stdout.read()
    await process.wait()
    return b"done" not in rest


async def versions(url: str) -> dict[int, int]:
    async with DatabaseManager(url) as db, db.get_session() as session:
        rows = await session.execute(
            select(OHLCVModel.volume, func.count()).group_by(OHLCVModel.volume)
        )
        return {int(volume): count for volume, count in rows}


async def test_sigkill_mid_upsert_leaves_old_or_new_never_a_mix(
    database_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    await run_writer(script, database_url, version=1, kill_after=None)
    assert await versions(database_url) == {1: ROWS}

    # 0.1 s into writing 200,000 rows: even raw COPY needs several times that here
    assert await run_writer(script, database_url, version=2, kill_after=0.1)

    assert await versions(database_url) == {1: ROWS}  # the whole old batch, not a mix
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
