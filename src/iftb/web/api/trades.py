"""A scope's trades: paged and filtered, as chart markers, and one trade's ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from iftb.data.storage import NotFoundError, Trade
from iftb.web.api.models import (
    FillOut,
    FundingOut,
    LedgerOut,
    MarkerOut,
    OrderOut,
    TradeOut,
    TradePageOut,
)
from iftb.web.deps import (
    MAX_LIMIT,
    Database,
    End,
    Exchange,
    Limit,
    RequestScope,
    Start,
    Symbol,
    reading,
    utc,
)

router = APIRouter(tags=["trades"])
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Trades to skip")]


@router.get("/trades", response_model=TradePageOut)
async def trades(
    manager: Database,
    scope: RequestScope,
    symbol: Symbol | None = None,
    exchange: Exchange | None = None,
    start: Start = None,
    end: End = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TradePageOut:
    """The scope's trades entered in ``[start, end)``, newest first, one page of them and how
    many there are in all (``TradeRepository.get_page``)."""
    async with reading(manager, scope) as journal:
        page = await journal.trades.get_page(
            symbol=symbol,
            exchange=exchange,
            start=utc(start),
            end=utc(end),
            limit=limit,
            offset=offset,
        )
    return TradePageOut(
        trades=[TradeOut.model_validate(trade) for trade in page.trades],
        total=page.total,
        limit=limit,
        offset=offset,
    )


@router.get("/trades/markers", response_model=list[MarkerOut])
async def markers(
    manager: Database,
    scope: RequestScope,
    symbol: Symbol,
    exchange: Exchange | None = None,
    start: Start = None,
    end: End = None,
) -> list[MarkerOut]:
    """Entries and exits of the symbol's trades entered in ``[start, end)`` (at most the
    latest 1000 trades), oldest first: what a candle chart marks."""
    async with reading(manager, scope) as journal:
        page = await journal.trades.get_page(
            symbol=symbol, exchange=exchange, start=utc(start), end=utc(end), limit=MAX_LIMIT
        )
    marks = [mark for trade in page.trades for mark in _marks(trade)]
    return sorted(marks, key=lambda mark: (mark.time, mark.trade_id, mark.kind != "entry"))


@router.get("/trades/{trade_id}/ledger", response_model=LedgerOut)
async def ledger(
    manager: Database,
    scope: RequestScope,
    trade_id: Annotated[str, Path(min_length=1, max_length=100, description="The trade's id")],
) -> LedgerOut:
    """A trade with its orders, fills and funding payments (empty where none are recorded)."""
    async with reading(manager, scope) as journal:
        trade = await journal.trades.get_by_trade_id(trade_id)
        if trade is None:
            raise NotFoundError(f"no trade {trade_id!r} in scope {scope}")
        orders = await journal.ledger.orders_of_trade(trade_id)
        fills = await journal.ledger.fills_of_trade(trade_id)
        funding = await journal.ledger.funding_of_trade(trade_id)
    return LedgerOut(
        trade=TradeOut.model_validate(trade),
        orders=[OrderOut.model_validate(order) for order in orders],
        fills=[FillOut.model_validate(fill) for fill in fills],
        funding=[FundingOut.model_validate(payment) for payment in funding],
    )


def _marks(trade: Trade) -> list[MarkerOut]:
    marks = [
        MarkerOut(
            time=trade.entry_time,
            trade_id=trade.trade_id,
            kind="entry",
            side=trade.side,
            price=trade.entry_price,
            realized_pnl=None,
        )
    ]
    if trade.exit_time is not None and trade.exit_price is not None:
        marks.append(
            MarkerOut(
                time=trade.exit_time,
                trade_id=trade.trade_id,
                kind="exit",
                side=trade.side,
                price=trade.exit_price,
                realized_pnl=trade.realized_pnl,
            )
        )
    return marks
