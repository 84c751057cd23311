"""How a unit of work ends: a commit whose outcome a cancellation cannot make unknown, and a
rollback that never hides the error that caused it."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from iftb.utils import get_logger

log = get_logger(__name__)


async def commit_shielded(session: AsyncSession) -> None:
    """Commit, finishing even when the caller is cancelled meanwhile (a commit cut short may
    or may not have reached the server): the cancellation is re-raised after a successful
    commit; a failed commit raises its own error instead. Either way the outcome is known."""
    commit = asyncio.ensure_future(session.commit())
    cancelled: asyncio.CancelledError | None = None
    while not commit.done():
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError as exc:
            cancelled = exc
    commit.result()
    if cancelled is not None:
        raise cancelled


async def rollback_quietly(session: AsyncSession) -> None:
    """Roll back; a connection that is already gone has nothing to roll back."""
    try:
        await session.rollback()
    except Exception as exc:  # the original error matters more than a failed rollback
        log.warning("rollback failed", error=type(exc).__name__)
