"""Read-only units of work: they never take SQLite's write lock (WAL readers run beside a
writer, in another process, and a long read does not starve writers), and they refuse writes
on both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from iftb.cli import app
from iftb.data.storage import (
    DatabaseManager,
    OHLCVRepository,
    ReadOnlyError,
    SystemEventModel,
    SystemEventRepository,
    Timeouts,
)
from tests.factories import T0, make_bar
from tests.support.lock_holder import sqlite_write_lock

CANDLES = 50


async def events(db: DatabaseManager) -> int:
    async with db.get_session(read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(SystemEventModel)) or 0)


async def test_a_write_in_a_read_only_unit_is_refused_and_changes_nothing(
    db: DatabaseManager,
) -> None:
    with pytest.raises(ReadOnlyError, match="read-only"):
        async with db.get_session(read_only=True) as session:
            await SystemEventRepository(session).log_event("restart", "info", "bot started")
    assert await events(db) == 0


async def test_a_read_only_unit_leaves_its_connection_writable_for_the_next(
    database_url: str,
) -> None:
    async with DatabaseManager(database_url, pool_size=1, max_overflow=0) as db:
        assert await events(db) == 0  # the pool's one connection, used read-only
        async with db.get_session() as session:
            await SystemEventRepository(session).log_event("restart", "info", "bot started")
        assert await events(db) == 1


@pytest.mark.sqlite_only
async def test_a_read_only_unit_reads_while_another_process_holds_the_write_lock(
    database_url: str, backend: str
) -> None:
    async with DatabaseManager(database_url, timeouts=Timeouts(busy=60)) as db:
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many([make_bar(h) for h in range(CANDLES)])
        async with sqlite_write_lock(str(make_url(database_url).database)) as writer:
            async with db.get_session(read_only=True) as session:
                latest = await OHLCVRepository(session).get_latest("BTCUSDT", "1h", limit=3)
            assert writer.is_holding  # the read did not wait for the writer to let go
        assert [b.timestamp for b in latest] == [T0 + timedelta(hours=h) for h in (49, 48, 47)]


LONG_READER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from iftb.data.storage import DatabaseManager, OHLCVRepository

    async def main(url):
        async with DatabaseManager(url) as db, db.get_session(read_only=True) as session:
            stream = OHLCVRepository(session).stream_range(
                "BTCUSDT", "1h", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
                chunk_size=10)
            seen = 0
            async for _ in stream:
                seen += 1
                if seen == 1:  # the read is open: let the writer go while it is
                    print("reading", flush=True)
                    await asyncio.to_thread(sys.stdin.readline)
            print(seen, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.sqlite_only
async def test_a_long_read_in_another_process_does_not_make_a_writer_fail(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    script = tmp_path / "reader.py"
    script.write_text(LONG_READER)
    async with DatabaseManager(database_url, timeouts=Timeouts(busy=1)) as db:
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many([make_bar(h) for h in range(CANDLES)])
        reader = await asyncio.create_subprocess_exec(
            sys.executable, str(script), database_url, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert reader.stdin is not None and reader.stdout is not None
        assert await reader.stdout.readline() == b"reading\n", await reader.stderr.read()  # type: ignore[union-attr]

        async with db.get_session() as session:  # writes while the read is held open
            await OHLCVRepository(session).upsert_many([make_bar(h) for h in range(CANDLES, 60)])
            await SystemEventRepository(session).log_event("backfill", "info", "10 candles")
        assert reader.returncode is None  # the reader was still reading throughout

        stdout, stderr = await reader.communicate(b"go\n")
        assert reader.returncode == 0, stderr.decode()
        assert stdout == f"{CANDLES}\n".encode()  # its snapshot, from before the write
        async with db.get_session(read_only=True) as session:
            stored = await OHLCVRepository(session).get_latest("BTCUSDT", "1h", limit=100)
        assert len(stored) == 60


@pytest.mark.sqlite_only
async def test_export_candles_runs_while_another_process_holds_the_write_lock(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    async with DatabaseManager(database_url) as db, db.get_session() as session:
        await OHLCVRepository(session).upsert_many([make_bar(h) for h in range(CANDLES)])
    out = tmp_path / "candles.csv"
    command = ["export-candles", "BTCUSDT", "1h", "--out", str(out), "--database-url", database_url]
    async with sqlite_write_lock(str(make_url(database_url).database)) as writer:
        result = await asyncio.to_thread(CliRunner().invoke, app, command)
        assert writer.is_holding  # the export did not wait for the writer to let go
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == CANDLES + 1  # a header and every candle
