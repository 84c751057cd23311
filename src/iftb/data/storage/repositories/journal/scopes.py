"""ScopeRepository: the scopes the journal holds, and their statistics side by side.

The only journal reads that cross scopes: what bots, modes and runs exist, and one comparison of
several scopes over the same window, each computed by the same SQL as
``TradeRepository.get_statistics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Subquery, func, select, union

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
from iftb.data.storage.scopes import Scope
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
        """Each scope with rows in any journal table, by bot, mode and run: one query."""
        scopes = union(*(select(m.bot, m.mode, m.run_id) for m in _SCOPED)).subquery("scopes")
        trades = _per_scope(
            TradeModel,
            func.count(TradeModel.id).label("trades"),
            func.max(TradeModel.exit_time).filter(CLOSED).label("last_exit"),
        )
        open_positions = _per_scope(
            PositionModel,
            func.count(PositionModel.id).label("open_positions"),
            where=PositionModel.status == PositionStatus.OPEN.value,
        )
        statement = (
            select(
                scopes.c.bot,
                scopes.c.mode,
                scopes.c.run_id,
                func.coalesce(trades.c.trades, 0).label("trades"),
                func.coalesce(open_positions.c.open_positions, 0).label("open_positions"),
                trades.c.last_exit,
            )
            .select_from(scopes)
            .outerjoin(trades, _same_scope(scopes, trades))
            .outerjoin(open_positions, _same_scope(scopes, open_positions))
            .order_by(scopes.c.bot, scopes.c.mode, scopes.c.run_id)
        )
        return [
            ScopeSummary(
                Scope(row.bot, row.mode, row.run_id), row.trades, row.open_positions, row.last_exit
            )
            for row in await self._execute(statement)
        ]

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


def _per_scope(
    model: Any, *aggregates: ColumnElement[Any], where: ColumnElement[bool] | None = None
) -> Subquery:
    """``aggregates`` of ``model``'s rows, per scope."""
    statement = select(model.bot, model.mode, model.run_id, *aggregates).group_by(
        model.bot, model.mode, model.run_id
    )
    if where is not None:
        statement = statement.where(where)
    return statement.subquery()


def _same_scope(left: Subquery, right: Subquery) -> ColumnElement[bool]:
    a, b = left.c, right.c
    same_run = (a.run_id == b.run_id) | (a.run_id.is_(None) & b.run_id.is_(None))
    return (a.bot == b.bot) & (a.mode == b.mode) & same_run
