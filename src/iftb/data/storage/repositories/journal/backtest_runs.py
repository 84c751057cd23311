"""BacktestRunRepository: backtests whose trades sit in the journal beside live and paper ones.

A run is started, its trades written in bulk (mode ``backtest``, scope ``run.scope``), and
finished with its statistics stored as a summary. Deleting a run deletes its journal rows in the
same statement (``ON DELETE CASCADE``); live and paper rows have no run and are never touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any

from sqlalchemy import Select, func, insert, select, update

from iftb.data.storage.enums import RunStatus
from iftb.data.storage.errors import ConflictError, NotFoundError, ValidationError
from iftb.data.storage.journal_records import BacktestRun, TradeStatistics
from iftb.data.storage.models import BacktestRunModel, TradeModel
from iftb.data.storage.records import Trade
from iftb.data.storage.repositories.base import (
    GENERATED_COLUMNS,
    Repository,
    all_records,
    checked_limit,
    one_or_none,
)
from iftb.data.storage.repositories.journal.rows import (
    bulk_insert,
    cycle_collector_paused,
    delete_run,
)
from iftb.data.storage.repositories.journal.scoped import claimed, in_scope
from iftb.data.storage.repositories.journal.trade_statistics import trade_statistics
from iftb.data.storage.scopes import SCOPE_COLUMNS, bot_name
from iftb.data.storage.sql_functions import utcnow
from iftb.data.storage.timeframes import parse_timeframe
from iftb.data.storage.validation import aware_utc, checked_id, choice_rule, column_rules

_RUN = BacktestRunModel
_RULES = column_rules(BacktestRunModel)
# A bulk-written trade's columns: the record's, then its scope. What a server default would
# give a value left out, the bulk write sends itself.
_RECORD_COLUMNS = tuple(
    name
    for name in TradeModel.__table__.columns.keys()  # noqa: SIM118 - a column collection
    if name not in GENERATED_COLUMNS and name not in SCOPE_COLUMNS
)
_RECORD_VALUES = attrgetter(*_RECORD_COLUMNS)
_TRADE_COLUMNS = (*_RECORD_COLUMNS, *SCOPE_COLUMNS)
_DEFAULTS = {"leverage": Decimal(1), "fee": Decimal(0), "funding": Decimal(0)}
_FINAL = (RunStatus.FINISHED, RunStatus.FAILED)


class BacktestRunRepository(Repository):
    """Backtest runs: start, record trades, finish, list, delete."""

    async def start(
        self,
        bot: str,
        strategy: str,
        *,
        timeframe: str,
        data_start: datetime,
        data_end: datetime,
        strategy_version: str | None = None,
        config: Any = None,
    ) -> BacktestRun:
        """Register a run (status ``running``); write its rows to ``run.scope``."""
        start, end = aware_utc("data_start", data_start), aware_utc("data_end", data_end)
        if end < start:
            raise ValidationError(
                f"data_end: {end.isoformat()} is before data_start {start.isoformat()}",
                field="data_end",
            )
        if not isinstance(strategy, str) or not strategy.strip():
            raise ValidationError("strategy: a strategy name cannot be empty", field="strategy")
        values = {
            "bot": bot_name(bot),
            "strategy": _RULES["strategy"](strategy),
            "strategy_version": None
            if strategy_version is None
            else _RULES["strategy_version"](strategy_version),
            "timeframe": parse_timeframe(timeframe).code,
            "data_start": start,
            "data_end": end,
            "config": _RULES["config"](config),
        }
        statement = insert(BacktestRunModel).values(values).returning(_RUN.id)
        run_id = int((await self._write(statement)).scalar_one())
        return await self._get(run_id)

    async def record_trades(self, run_id: int, trades: Sequence[Trade]) -> int:
        """Write a run's trades in one bulk call (COPY on PostgreSQL); returns how many.

        Every trade is checked first (a bad one rejects the batch, naming its index) and stamped
        with the run's scope; one that names another scope is refused. A trade id used twice in
        the run is a DuplicateError, and nothing of the batch is written.
        """
        run = await self._running(run_id)
        scope = run.scope
        stamp = tuple(scope.values().values())
        rows = []
        with cycle_collector_paused():
            for index, trade in enumerate(trades):
                try:
                    trade.validate()
                    if trade.bot is not None or trade.mode is not None or trade.run_id is not None:
                        claimed(trade, scope, {})
                except ValidationError as exc:
                    raise exc.at_index(index) from exc.__cause__
                rows.append(_RECORD_VALUES(trade) + stamp)
        async with self._session.begin_nested():
            connection = await self._session.connection()
            return await bulk_insert(connection, TradeModel, _TRADE_COLUMNS, rows, _DEFAULTS)

    async def finish(
        self,
        run_id: int,
        *,
        status: str = RunStatus.FINISHED,
        error_message: str | None = None,
        starting_balance: Decimal | None = None,
    ) -> BacktestRun:
        """End a running run as finished (or failed), storing its statistics as the summary.

        A run ends once: finishing it again is a ConflictError.
        """
        final = choice_rule("status", RunStatus)(status)
        if final not in _FINAL:
            raise ValidationError("status: a run ends as 'finished' or 'failed'", field="status")
        run = await self._running(run_id)
        statistics = await trade_statistics(
            self._session, in_scope(TradeModel, run.scope), starting_balance
        )
        values = {
            "status": final.value,
            "finished_at": utcnow(),
            "summary": summary_of(statistics),
            "error_message": None
            if error_message is None
            else _RULES["error_message"](error_message),
        }
        statement = (
            update(BacktestRunModel)
            .where(_RUN.id == run.id, _RUN.status == RunStatus.RUNNING.value)
            .values(values)
        )
        if not (await self._write(statement)).rowcount:  # type: ignore[attr-defined]
            raise ConflictError(f"backtest run {run_id} ended meanwhile; nothing was written")
        return await self._get(run.id)

    async def get(self, run_id: int) -> BacktestRun | None:
        statement = _listing().where(_RUN.id == checked_id("run_id", run_id))
        return one_or_none(BacktestRun, await self._execute(statement))

    async def list_runs(
        self,
        bot: str | None = None,
        strategy: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[BacktestRun]:
        """Runs, newest first, with their trade counts: one query."""
        statement = _listing()
        if bot is not None:
            statement = statement.where(_RUN.bot == bot_name(bot))
        if strategy is not None:
            statement = statement.where(_RUN.strategy == strategy)
        if status is not None:
            statement = statement.where(_RUN.status == choice_rule("status", RunStatus)(status))
        statement = statement.order_by(_RUN.started_at.desc(), _RUN.id.desc())
        return all_records(BacktestRun, await self._execute(statement.limit(checked_limit(limit))))

    async def latest(self, bot: str, strategy: str | None = None) -> BacktestRun | None:
        """The bot's most recent finished run (of ``strategy``, when given)."""
        runs = await self.list_runs(bot, strategy, RunStatus.FINISHED, limit=1)
        return runs[0] if runs else None

    async def delete(self, run_id: int) -> int:
        """Delete a run with every journal row of it, in one statement; returns how many
        trades went. Live and paper rows are never touched (they have no run)."""
        deleted = await delete_run(await self._session.connection(), checked_id("run_id", run_id))
        if deleted is None:
            raise NotFoundError(f"no backtest run with id {run_id}")
        return deleted

    async def _get(self, run_id: int) -> BacktestRun:
        run = await self.get(run_id)
        if run is None:
            raise NotFoundError(f"no backtest run with id {run_id}")
        return run

    async def _running(self, run_id: int) -> BacktestRun:
        run = await self._get(checked_id("run_id", run_id))
        if run.status != RunStatus.RUNNING:
            raise ConflictError(f"backtest run {run_id} is {run.status}: it takes no more writes")
        return run


def summary_of(statistics: TradeStatistics) -> dict[str, Any]:
    """Statistics as JSON: exact numbers as strings, durations in seconds."""
    return {
        name: str(value)
        if isinstance(value, Decimal)
        else value.total_seconds()
        if isinstance(value, timedelta)
        else value
        for name, value in dataclasses.asdict(statistics).items()
    }


def _listing() -> Select[Any]:
    trades = (
        select(func.count())
        .where(TradeModel.run_id == _RUN.id)
        .correlate(BacktestRunModel)
        .scalar_subquery()
    )
    return select(*BacktestRunModel.__table__.columns, trades.label("trade_count"))
