"""Another process that holds a database lock until told to let go.

``held_lock(...)`` starts a Python process that takes the lock, says so on its stdout, and waits
for a line on its stdin before it lets go: what the test does meanwhile happens while the lock is
held, by construction (no sleeps, no timing).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    path, how = sys.argv[1], sys.argv[2]
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("BEGIN IMMEDIATE")
    if how == "write":  # an uncommitted write, as a busy bot has
        connection.execute(
            "INSERT INTO system_events (event_type, severity, message) "
            "VALUES ('holder', 'info', 'uncommitted')")
    else:  # a file being created by another process
        connection.execute("CREATE TABLE holder (x INTEGER)")
    print("holding", flush=True)
    sys.stdin.readline()
    connection.rollback()
    print("released", flush=True)
    """
)


class Holder:
    """The holding process: ``is_holding`` until ``release()``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def is_holding(self) -> bool:
        return self.process.returncode is None

    async def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()
        assert await self.process.stdout.readline() == b"released\n"
        await self.process.wait()


@asynccontextmanager
async def sqlite_write_lock(path: str, how: str = "write") -> AsyncIterator[Holder]:
    """Another process holding the write lock of the SQLite file at ``path`` (``how``:
    ``"write"`` an uncommitted event, ``"create"`` a new file's first table)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        path,
        how,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        assert await process.stdout.readline() == b"holding\n"
        holder = Holder(process)
        yield holder
        if holder.is_holding:
            await holder.release()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
