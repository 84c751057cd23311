"""A unit of work cancelled while it commits (``asyncio.timeout`` firing) has a known outcome:
the commit runs to its end, then the cancellation is delivered — committed exactly when the
block ran to its end. The commit is held at a gate, so the timeout fires during it every time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.util import await_only

from iftb.data.storage import DatabaseManager, SystemEventModel, SystemEventRepository


async def events(db: DatabaseManager) -> int:
    async with db.get_session(read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(SystemEventModel)) or 0)


class CommitGate:
    """Holds every commit on the engine until opened; says when one is waiting."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    def __call__(self, _connection: Any) -> None:
        self.reached.set()
        await_only(self.opened.wait())  # the commit event runs in SQLAlchemy's greenlet


@asynccontextmanager
async def gated_commits(db: DatabaseManager) -> AsyncIterator[CommitGate]:
    gate = CommitGate()
    event.listen(db.engine.sync_engine, "commit", gate)
    try:
        yield gate
    finally:
        event.remove(db.engine.sync_engine, "commit", gate)


async def test_a_timeout_firing_during_commit_is_raised_after_the_work_is_committed(
    db: DatabaseManager,
) -> None:
    block_finished = False

    async def unit_of_work(deadline: asyncio.Timeout) -> None:
        nonlocal block_finished
        async with deadline, db.get_session() as session:
            await SystemEventRepository(session).log_event("order", "info", "order sent")
            block_finished = True

    async with gated_commits(db) as gate:
        deadline = asyncio.timeout(None)
        task = asyncio.create_task(unit_of_work(deadline))
        await gate.reached.wait()  # the block has finished; its commit is under way
        deadline.reschedule(asyncio.get_running_loop().time())  # the timeout fires now
        while not task.cancelling():  # noqa: ASYNC110 - waits for the cancellation, no time
            await asyncio.sleep(0)
        gate.opened.set()
        with pytest.raises(TimeoutError):
            await task

    assert block_finished
    assert await events(db) == 1  # the documented rule: the block finished, so it committed


async def test_a_timeout_firing_inside_the_block_rolls_the_work_back(db: DatabaseManager) -> None:
    started = asyncio.Event()

    async def unit_of_work() -> None:
        async with asyncio.timeout(None) as deadline, db.get_session() as session:
            await SystemEventRepository(session).log_event("order", "info", "order sent")
            deadline.reschedule(asyncio.get_running_loop().time())
            started.set()
            await asyncio.Event().wait()  # the block never finishes: the timeout ends it

    with pytest.raises(TimeoutError):
        await unit_of_work()
    assert started.is_set()
    assert await events(db) == 0
