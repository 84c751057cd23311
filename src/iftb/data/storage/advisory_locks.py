"""Transaction-scoped advisory locks by name, for writers that must take turns on one thing (a
ledger's symbol, a candle series) without locking a row.

PostgreSQL only: on SQLite a write unit already holds the database's one write lock
(BEGIN IMMEDIATE), so there is nothing to take.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Text, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage.errors import translated_errors


async def hold_locks(
    connection: AsyncConnection, *, shared: Sequence[str] = (), exclusive: Sequence[str] = ()
) -> None:
    """Take the named locks until the transaction ends: the ``shared`` ones, then the
    ``exclusive`` ones, each in the order given. Callers give names in one fixed order, so two
    writers never wait for each other in a cycle."""
    if connection.dialect.name != "postgresql":
        return
    locks = [func.pg_advisory_xact_lock_shared(_key(name)) for name in shared]
    locks += [func.pg_advisory_xact_lock(_key(name)) for name in exclusive]
    if locks:
        with translated_errors():
            await connection.execute(select(*locks))  # taken left to right


def _key(name: str) -> object:
    return func.hashtextextended(literal(name, Text), 0)
