"""ScopeRepository: the scopes the journal holds, and their statistics side by side.

The only journal reads that cross scopes: what bots, modes and runs exist (the registry of
migration 0012), whether a scope's trades changed, and one comparison of several scopes over the
same window, each computed by the same SQL as ``TradeRepository.get_statistics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    cast,
    exists,
    func,
    null,
    or_,
    select,
    union_all,
)

from iftb.data.storage.enums import PositionStatus
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.journal_records import ScopeStatistics, ScopeSummary
from iftb.data.storage.models import (
    BotStateModel,
    DailyPerformanceModel,
    LLMAnalysisLogModel,
    PairLockModel,
    PositionModel,
    SystemEventModel,
    TradeModel,
)
from iftb.data.storage.repositories.base import Repository
from iftb.data.storage.repositories.journal.scoped import in_scope
from iftb.data.storage.repositories.journal.trade_statistics import CLOSED, trade_statistics
from iftb.data.storage.scope_models import NO_RUN, JournalScopeModel
from iftb.data.storage.scopes import Scope, checked_scope
from iftb.data.storage.validation import aware_utc

_SCOPED = (
    TradeModel,
    PositionModel,
    DailyPerformanceModel,
    SystemEventModel,
    LLMAnalysisLogModel,
    BotStateModel,
    PairLockModel,
)
MAX_COMPARED = 50


class ScopeRepository(Repository):
    """Every scope of the journal, and comparisons across them."""

    async def list_scopes(self) -> list[ScopeSummary]:
        """Each scope with rows in any journal table, by bot, mode and run: one query over the
        scope registry (migration 0012), each scope counted through its own indexes."""
        live, runs = _summaries(runs=False), _summaries(runs=True)
        statement = union_all(live, runs).order_by("bot", "mode", "run_id")
        return [
            ScopeSummary(
                Scope(row.bot, row.mode, row.run_id), row.trades, row.open_positions, row.last_exit
            )
            for row in await self._execute(statement)
        ]

    async def trades_revision(self, scope: Scope) -> int:
        """A number that moves forward with every insert, update or delete of ``scope``'s
        trades, by any writer, in the writer's transaction (0 while it has none).

        Read twice, an unchanged number means unchanged trades: what was computed from them
        (statistics, say) still holds. Read it before computing, so the result is at least as
        new as the number it is kept under."""
        checked_scope(scope)
        statement = select(JournalScopeModel.trades_revision).where(
            JournalScopeModel.bot == scope.bot,
            JournalScopeModel.mode == scope.mode,
            JournalScopeModel.run_key == (scope.run_id or NO_RUN),
        )
        revision = (await self._execute(statement)).scalar_one_or_none()
        return revision or 0

    async def compare(
        self,
        scopes: Sequence[Scope],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        starting_balance: Decimal | None = None,
    ) -> list[ScopeStatistics]:
        """The statistics of each scope's trades closed in ``[start, end)`` (unbounded where
        None), in the order given: e.g. live vs paper vs the last backtest of a strategy."""
        if not scopes or len(scopes) > MAX_COMPARED:
            raise ValidationError(
                f"scopes: compare 1 to {MAX_COMPARED} scopes (got {len(scopes)})", field="scopes"
            )
        window: list[ColumnElement[bool]] = []
        if start is not None:
            window.append(TradeModel.exit_time >= aware_utc("start", start))
        if end is not None:
            window.append(TradeModel.exit_time < aware_utc("end", end))
        if exchange is not None:
            window.append(TradeModel.exchange == exchange)
        if symbol is not None:
            window.append(TradeModel.symbol == symbol)
        compared = []
        for scope in scopes:
            if not isinstance(scope, Scope):
                raise ValidationError(
                    f"scopes: expected Scope values, got {type(scope).__name__}", field="scopes"
                )
            trades = in_scope(TradeModel, scope)
            for condition in window:
                trades &= condition
            statistics = await trade_statistics(self._session, trades, starting_balance)
            compared.append(ScopeStatistics(scope, statistics))
        return compared


def _summaries(*, runs: bool) -> Select[Any]:
    """The registry's live and paper scopes (``runs`` False) or backtest runs that still hold
    journal rows, with their trades, open positions and last close."""
    registered = JournalScopeModel

    def rows_of(model: Any) -> ColumnElement[bool]:
        run: ColumnElement[bool] = (
            model.run_id == registered.run_key if runs else model.run_id.is_(None)
        )
        same: ColumnElement[bool] = (model.bot == registered.bot) & (model.mode == registered.mode)
        return same & run

    trades = select(func.count()).where(rows_of(TradeModel)).scalar_subquery()
    open_positions = (
        select(func.count())
        .where(rows_of(PositionModel), PositionModel.status == PositionStatus.OPEN.value)
        .scalar_subquery()
    )
    last_exit = select(func.max(TradeModel.exit_time)).where(rows_of(TradeModel), CLOSED)
    return select(
        registered.bot,
        registered.mode,
        (registered.run_key if runs else cast(null(), BigInteger)).label("run_id"),
        trades.label("trades"),
        open_positions.label("open_positions"),
        last_exit.scalar_subquery().label("last_exit"),
    ).where(
        registered.run_key != NO_RUN if runs else registered.run_key == NO_RUN,
        or_(*(exists().where(rows_of(model)) for model in _SCOPED)),
    )
