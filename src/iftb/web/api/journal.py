"""A scope's results: statistics of a window, daily rows, the equity curve, open positions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from fastapi import APIRouter, Request

from iftb.data.storage import ScopeRepository, TradeStatistics
from iftb.data.storage.validation import EARLIEST, LATEST
from iftb.web.api.models import (
    DailyOut,
    EquityPointOut,
    PositionOut,
    ScopeOut,
    StatisticsOut,
)
from iftb.web.deps import Database, End, Exchange, RequestScope, Start, reading, utc

router = APIRouter(tags=["journal"])
_PERCENT = Decimal("0.0001")


@router.get("/statistics", response_model=StatisticsOut)
async def statistics(
    request: Request,
    manager: Database,
    scope: RequestScope,
    start: Start = None,
    end: End = None,
    exchange: Exchange | None = None,
) -> StatisticsOut:
    """Statistics of the scope's trades closed in ``[start, end)``, on one exchange or all
    (the SQL of ``TradeRepository.get_statistics``, through ``ScopeRepository.compare``), kept
    until a trade of the scope is written (``statistics_cache``)."""
    first, until = utc(start), utc(end)
    async with manager.get_session(read_only=True) as session:
        scopes = ScopeRepository(session)

        async def compute() -> TradeStatistics:
            [compared] = await scopes.compare([scope], start=first, end=until, exchange=exchange)
            return compared.statistics

        revision = await scopes.trades_revision(scope)
        figures = await request.app.state.statistics.get(
            (scope, first, until, exchange), revision, compute
        )
    return StatisticsOut(
        scope=ScopeOut.model_validate(scope),
        start=first,
        end=until,
        exchange=exchange,
        **asdict(figures),
    )


@router.get("/daily", response_model=list[DailyOut])
async def daily(
    manager: Database,
    scope: RequestScope,
    start: Start = None,
    end: End = None,
    exchange: Exchange = "binance",
) -> list[DailyOut]:
    """The scope's daily rows from ``start``'s day to ``end``'s day (both included), oldest
    first."""
    first, last = _days(start, end)
    async with reading(manager, scope) as journal:
        rows = await journal.daily_performance.get_range(first, last, exchange)
    return [DailyOut.model_validate(row) for row in rows]


@router.get("/equity", response_model=list[EquityPointOut])
async def equity(
    manager: Database,
    scope: RequestScope,
    start: Start = None,
    end: End = None,
    exchange: Exchange = "binance",
) -> list[EquityPointOut]:
    """Each day's ending balance (``get_equity_curve``) with its drawdown below the peak so
    far: amount, and percent of the peak."""
    first, last = _days(start, end)
    async with reading(manager, scope) as journal:
        curve = await journal.daily_performance.get_equity_curve(first, last, exchange)
    points, peak = [], None
    for day, balance in curve:
        peak = balance if peak is None or balance > peak else peak
        drawdown = peak - balance
        percent = (
            (drawdown / peak * 100).quantize(_PERCENT, rounding=ROUND_HALF_UP) if peak > 0 else None
        )
        points.append(
            EquityPointOut(
                date=day, balance=balance, peak=peak, drawdown=drawdown, drawdown_pct=percent
            )
        )
    return points


@router.get("/positions", response_model=list[PositionOut])
async def positions(
    manager: Database, scope: RequestScope, exchange: Exchange = "binance"
) -> list[PositionOut]:
    """The scope's open positions on ``exchange``, with their unrealized PnL, oldest first."""
    async with reading(manager, scope) as journal:
        found = await journal.positions.get_open_positions(exchange)
    return [PositionOut.model_validate(position) for position in found]


def _days(start: Start, end: End) -> tuple[date, date]:
    first, last = utc(start), utc(end)
    return (first or EARLIEST).date(), (last or LATEST).date()
