"""Scoped handles: ``db.scope(bot=..., mode=...)`` gives units of work whose repositories all
read and write one scope, so a bot's code cannot mix scopes by accident."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage.repositories.audit.llm_analysis_log import LLMAnalysisLogRepository
from iftb.data.storage.repositories.audit.system_events import SystemEventRepository
from iftb.data.storage.repositories.journal.bot_state import BotStateRepository
from iftb.data.storage.repositories.journal.daily_performance import DailyPerformanceRepository
from iftb.data.storage.repositories.journal.ledger import LedgerRepository
from iftb.data.storage.repositories.journal.pair_locks import PairLockRepository
from iftb.data.storage.repositories.journal.positions import PositionRepository
from iftb.data.storage.repositories.journal.trades import TradeRepository
from iftb.data.storage.scopes import Scope

if TYPE_CHECKING:
    from iftb.data.storage.manager import DatabaseManager

T = TypeVar("T")


class Journal:
    """One scope's repositories over one unit of work (``session``)."""

    def __init__(self, session: AsyncSession, scope: Scope) -> None:
        self.session = session
        self.scope = scope
        self.trades = TradeRepository(session, scope)
        self.positions = PositionRepository(session, scope)
        self.daily_performance = DailyPerformanceRepository(session, scope)
        self.events = SystemEventRepository(session, scope)
        self.llm_calls = LLMAnalysisLogRepository(session, scope)
        self.state = BotStateRepository(session, scope)
        self.locks = PairLockRepository(session, scope)
        self.ledger = LedgerRepository(session, scope)

    def __repr__(self) -> str:
        return f"Journal({self.scope})"


class ScopedDatabase:
    """A database handle bound to one scope; the manager's other calls stay on the manager."""

    def __init__(self, manager: DatabaseManager, scope: Scope) -> None:
        self._manager = manager
        self.scope = scope

    def __repr__(self) -> str:
        return f"ScopedDatabase({self.scope}, {self._manager.safe_url!r})"

    @asynccontextmanager
    async def session(self, *, read_only: bool = False) -> AsyncIterator[Journal]:
        """A unit of work (``DatabaseManager.get_session``) as this scope's ``Journal``."""
        async with self._manager.get_session(read_only=read_only) as session:
            yield Journal(session, self.scope)

    async def run_idempotent(
        self, work: Callable[[Journal], Awaitable[T]], *, read_only: bool = False
    ) -> T:
        """``DatabaseManager.run_idempotent`` with this scope's ``Journal``."""
        name = str(getattr(work, "__qualname__", "work"))
        return await self._manager.run_idempotent(
            lambda session: work(Journal(session, self.scope)), operation=name, read_only=read_only
        )
