"""What the routes share: the database, the scope a request names, its window and its limit.

Every query parameter is checked here, before any SQL runs: a malformed one is a 422 naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from time import monotonic
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Request, status

from iftb.data.storage import DEFAULT_SCOPE, DatabaseManager, Scope, ScopeRepository
from iftb.data.storage.scoped_database import Journal, ScopedDatabase
from iftb.data.storage.scopes import BOT_NAME_LENGTH, DEFAULT_BOT
from iftb.data.storage.validation import BIGINT_MAX

MAX_LIMIT = 1000
"""The most rows one request returns; a larger ``limit`` is refused, not cut."""

KNOWN_SCOPES_SECONDS = 60.0
"""How long a list of the journal's scopes is trusted before a request reads it again."""


def database(request: Request) -> DatabaseManager:
    manager: DatabaseManager = request.app.state.database
    return manager


Database = Annotated[DatabaseManager, Depends(database)]


class KnownScopes:
    """The scopes the journal holds, read again when a request names one not seen (or the list
    is old), so an unknown scope is a 404 and a known one costs no query."""

    def __init__(self) -> None:
        self._scopes: frozenset[Scope] = frozenset()
        self._read_at = -KNOWN_SCOPES_SECONDS

    async def require(self, manager: DatabaseManager, scope: Scope) -> None:
        fresh = monotonic() - self._read_at < KNOWN_SCOPES_SECONDS
        if scope == DEFAULT_SCOPE or (fresh and scope in self._scopes):
            return
        await self.read(manager)
        if scope not in self._scopes:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                detail=f"unknown scope {scope}: GET /api/scopes lists the journal's scopes",
            )

    async def read(self, manager: DatabaseManager) -> None:
        async with manager.get_session(read_only=True) as session:
            summaries = await ScopeRepository(session).list_scopes()
        self.remember(summary.scope for summary in summaries)

    def remember(self, scopes: Iterable[Scope]) -> None:
        """The journal's scopes as just read (by this class or ``/api/scopes``)."""
        self._scopes = frozenset(scopes)
        self._read_at = monotonic()


def reading(manager: DatabaseManager, scope: Scope) -> AbstractAsyncContextManager[Journal]:
    """A read-only unit of work as ``scope``'s repositories."""
    return ScopedDatabase(manager, scope).session(read_only=True)


async def request_scope(
    request: Request,
    manager: Database,
    bot: Annotated[
        str, Query(min_length=1, max_length=BOT_NAME_LENGTH, description="The bot's name")
    ] = DEFAULT_BOT,
    mode: Annotated[Literal["live", "paper", "backtest"], Query()] = "live",
    run_id: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="The backtest run (backtests only)")
    ] = None,
) -> Scope:
    """The scope a request names; one that is malformed is a 422, one with no rows a 404."""
    scope = Scope(bot, mode, run_id)  # a ValidationError: 422 (iftb.web.errors)
    known: KnownScopes = request.app.state.known_scopes
    await known.require(manager, scope)
    return scope


RequestScope = Annotated[Scope, Depends(request_scope)]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$"
"""Symbols and exchanges as exchanges spell them (``BTCUSDT``, ``BTC/USDT:USDT``, ``BTC_USDT``,
``binance``): anything else is refused before it reaches a query."""
Exchange = Annotated[
    str, Query(min_length=1, max_length=50, pattern=NAME_PATTERN, description="The exchange")
]
Symbol = Annotated[
    str, Query(min_length=1, max_length=20, pattern=NAME_PATTERN, description="The symbol")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Rows, at most {MAX_LIMIT}")]
Start = Annotated[
    datetime | None,
    Query(description="ISO-8601; without a zone, UTC; the window includes it"),
]
End = Annotated[
    datetime | None,
    Query(description="ISO-8601; without a zone, UTC; the window stops before it"),
]


def utc(moment: datetime | None) -> datetime | None:
    """A query's time in UTC; one given without a zone is taken as UTC (the store's only zone)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
