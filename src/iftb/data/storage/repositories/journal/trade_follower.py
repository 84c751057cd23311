"""How trades and positions follow the ledger: recomputed from all of a trade's fills and
funding each time one arrives (``ledger_math``), so any arrival order gives the same rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update

from iftb.data.storage.enums import OrderType, PositionStatus, Side, TradeAction
from iftb.data.storage.ledger_book import (
    executions,
    funding_owner,
    in_exchange_order,
    position_status,
)
from iftb.data.storage.ledger_math import TradeFigures, trade_figures
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.ledger_records import Fill, FundingPayment, FundingTotal, Order
from iftb.data.storage.models import Percent, PositionModel, TradeModel
from iftb.data.storage.repositories.base import all_records, one_or_none, touched
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.validation import aware_utc

_ORDERS = OrderModel.__table__.columns
_FILLS = FillModel.__table__.columns
_FUNDING = FundingPaymentModel.__table__.columns


class TradeFollower(ScopedRepository):
    """The ledger's reads, and the trade and position each trade's fills make."""

    async def get_order(self, client_order_id: str, exchange: str = "binance") -> Order | None:
        return await self._order(exchange, client_order_id)

    async def orders_of_trade(self, trade_id: str) -> list[Order]:
        statement = (
            select(*_ORDERS)
            .where(self._in_scope(OrderModel), OrderModel.trade_id == trade_id)
            .order_by(OrderModel.placed_at, OrderModel.id)
        )
        return all_records(Order, await self._execute(statement))

    async def fills_of_trade(self, trade_id: str) -> list[Fill]:
        orders = select(OrderModel.id).where(
            self._in_scope(OrderModel), OrderModel.trade_id == trade_id
        )
        return await self._fills(FillModel.order_id.in_(orders))

    async def funding_of_trade(self, trade_id: str) -> list[FundingPayment]:
        statement = (
            select(*_FUNDING)
            .where(self._in_scope(FundingPaymentModel), FundingPaymentModel.trade_id == trade_id)
            .order_by(FundingPaymentModel.funding_time)
        )
        return all_records(FundingPayment, await self._execute(statement))

    async def funding_totals(
        self, start: datetime, end: datetime, symbol: str | None = None
    ) -> list[FundingTotal]:
        """Funding per symbol and UTC day over ``[start, end)``, by day then symbol."""
        statement = select(FundingPaymentModel.symbol, FundingPaymentModel.funding_time,
                           FundingPaymentModel.amount).where(
            self._in_scope(FundingPaymentModel),
            FundingPaymentModel.funding_time >= aware_utc("start", start),
            FundingPaymentModel.funding_time < aware_utc("end", end),
        )  # fmt: skip
        if symbol is not None:
            statement = statement.where(FundingPaymentModel.symbol == symbol)
        totals: dict[tuple[date, str], tuple[Decimal, int]] = {}
        for row in await self._execute(statement):
            key = (row.funding_time.date(), row.symbol)
            amount, payments = totals.get(key, (Decimal(0), 0))
            totals[key] = (amount + row.amount, payments + 1)
        return [
            FundingTotal(day, name, amount, payments)
            for (day, name), (amount, payments) in sorted(totals.items())
        ]

    async def _order(self, exchange: str, client_order_id: str) -> Order | None:
        statement = select(*_ORDERS).where(
            self._in_scope(OrderModel),
            OrderModel.exchange == exchange,
            OrderModel.client_order_id == client_order_id,
        )
        return one_or_none(Order, await self._execute(statement))

    async def _an_order_of(self, trade_id: str) -> Order | None:
        statement = select(*_ORDERS).where(
            self._in_scope(OrderModel), OrderModel.trade_id == trade_id
        )
        return one_or_none(Order, await self._execute(statement.limit(1)))

    async def _stored_fill(self, fill: Fill) -> Fill | None:
        statement = select(*_FILLS).where(
            self._in_scope(FillModel),
            FillModel.exchange == fill.exchange,
            FillModel.symbol == fill.symbol,
            FillModel.exchange_fill_id == fill.exchange_fill_id,
        )
        return one_or_none(Fill, await self._execute(statement))

    async def _fills(self, condition: Any) -> list[Fill]:
        """The fills that meet ``condition``, in their exchange's order."""
        statement = select(*_FILLS).where(self._in_scope(FillModel), condition)
        return in_exchange_order(all_records(Fill, await self._execute(statement)))

    async def _trade_open_at(self, payment: FundingPayment) -> str | None:
        """The ledger trade of the payment's symbol and side open at its funding time, if any
        (``funding_owner``)."""
        windows = await self._windows(
            payment.exchange, payment.symbol, payment.position_side, payment.funding_time
        )
        return funding_owner(payment.funding_time, windows)

    async def _windows(
        self, exchange: str, symbol: str, side: str, since: datetime, but: str | None = None
    ) -> list[tuple[datetime, datetime | None, str]]:
        """(entry, exit, trade id) of the ledger trades (those with orders) of one side of a
        symbol still open at ``since`` or later, but trade ``but``."""
        has_orders = exists().where(  # one probe of ix_orders_*_trade_id per candidate trade
            self._in_scope(OrderModel), OrderModel.trade_id == TradeModel.trade_id
        )
        statement = select(TradeModel.entry_time, TradeModel.exit_time, TradeModel.trade_id).where(
            self._in_scope(TradeModel),
            TradeModel.exchange == exchange,
            TradeModel.symbol == symbol,
            TradeModel.side == side,
            or_(TradeModel.exit_time.is_(None), TradeModel.exit_time >= since),
            has_orders,
        )
        if but is not None:
            statement = statement.where(TradeModel.trade_id != but)
        return [
            (row.entry_time, row.exit_time, row.trade_id) for row in await self._execute(statement)
        ]

    async def follow(self, trade_id: str) -> None:
        """Recompute trade ``trade_id`` and its position from all of its fills and funding;
        then the trades whose funding payments changed hands as its window moved."""
        orders = await self.orders_of_trade(trade_id)
        if not orders:
            return
        side = Side(orders[0].position_side)
        liquidating = (o.client_order_id for o in orders if o.order_type == OrderType.LIQUIDATION)
        fills = executions(await self.fills_of_trade(trade_id), liquidating)
        figures = trade_figures(side, fills)
        if figures is None:
            return
        funding, others = await self._link_funding(trade_id, orders[0], figures)
        await self._store_trade(trade_id, orders[0], figures.with_funding(funding))
        for other in sorted(others):
            await self.follow(other)

    async def _link_funding(
        self, trade_id: str, order: Order, figures: TradeFigures
    ) -> tuple[list[Decimal], set[str]]:
        """Give every payment of the trade's symbol and side from its entry on to the trade
        open at its time (``funding_owner``, with this trade's new window): this trade's
        amounts, and the other trades that gained or lost a payment."""
        statement = select(
            FundingPaymentModel.id,
            FundingPaymentModel.funding_time,
            FundingPaymentModel.amount,
            FundingPaymentModel.trade_id,
        ).where(
            self._in_scope(FundingPaymentModel),
            FundingPaymentModel.exchange == order.exchange,
            FundingPaymentModel.symbol == order.symbol,
            FundingPaymentModel.position_side == order.position_side,
            FundingPaymentModel.funding_time >= figures.entry_time,
        )
        windows = await self._windows(
            order.exchange, order.symbol, order.position_side, figures.entry_time, but=trade_id
        )
        windows.append((figures.entry_time, figures.exit_time, trade_id))
        mine: list[Decimal] = []
        moved: dict[str | None, list[int]] = defaultdict(list)
        others: set[str] = set()
        for payment in await self._execute(statement):
            owner = funding_owner(payment.funding_time, windows)
            if owner == trade_id:
                mine.append(payment.amount)
            if owner != payment.trade_id:
                moved[owner].append(payment.id)
                others |= {owner, payment.trade_id} - {None, trade_id}
        for owner, ids in moved.items():
            await self._execute(
                update(FundingPaymentModel)
                .where(FundingPaymentModel.id.in_(ids))
                .values(trade_id=owner)
            )
        return mine, others

    async def _store_trade(self, trade_id: str, order: Order, figures: TradeFigures) -> None:
        row = trade_values(order, figures) | {"trade_id": trade_id} | self.scope.values()
        await self._execute(
            self._scoped_upsert(TradeModel, row | touched(TradeModel), ("trade_id",))
        )
        await self._store_position(trade_id, order, figures)

    async def _store_position(self, trade_id: str, order: Order, figures: TradeFigures) -> None:
        """One position row per trade, a function of its fills alone (``position_status``).
        While it is open, an older position of its side still open has ended: closed, so that
        one position per side stays open."""
        series = and_(
            self._in_scope(PositionModel),
            PositionModel.exchange == order.exchange,
            PositionModel.symbol == order.symbol,
            PositionModel.side == order.position_side,
        )
        found = (
            await self._execute(
                select(PositionModel.id, PositionModel.trade_id, PositionModel.status,
                       PositionModel.entry_time).where(series)
            )
        ).all()  # fmt: skip
        others = [p.entry_time for p in found if p.trade_id != trade_id]
        status = position_status(figures, max(others, default=figures.entry_time))
        if status == PositionStatus.OPEN:
            superseded = [
                p.id for p in found if p.trade_id != trade_id and p.status == PositionStatus.OPEN
            ]
            if superseded:
                await self._execute(
                    update(PositionModel)
                    .where(PositionModel.id.in_(superseded))
                    .values(status=PositionStatus.CLOSED.value, **touched(PositionModel))
                )
        values = position_values(order, figures, status)
        own = next((p.id for p in found if p.trade_id == trade_id), None)
        if own is None:
            values |= {"trade_id": trade_id} | self.scope.values()
            await self._execute(insert(PositionModel).values(values))
        else:
            await self._execute(
                update(PositionModel)
                .where(PositionModel.id == own)
                .values(values | touched(PositionModel) | {"version": PositionModel.version + 1})
            )


def trade_values(order: Order, figures: TradeFigures) -> dict[str, Any]:
    """The trade row ``figures`` make (of the trade ``order`` belongs to)."""
    action = TradeAction.OPEN
    if figures.is_closed:
        action = TradeAction.LIQUIDATED if figures.liquidated else TradeAction.CLOSE
    return {
        "symbol": order.symbol,
        "exchange": order.exchange,
        "side": order.position_side,
        "action": action.value,
        "entry_price": figures.entry_price,
        "quantity": figures.quantity,
        "exit_price": figures.exit_price,
        "fee": figures.fees,
        "funding": figures.funding,
        "realized_pnl": figures.realized_pnl,
        "realized_pnl_pct": pct if Percent.holds(pct := figures.realized_pnl_pct) else None,
        "entry_time": figures.entry_time,
        "exit_time": figures.exit_time,
    }


def position_values(order: Order, figures: TradeFigures, status: PositionStatus) -> dict[str, Any]:
    """The position row of a trade: what is still open while something is, else everything
    it held."""
    still_open = not figures.is_closed and figures.open_quantity > 0
    quantity = figures.open_quantity if still_open else figures.quantity
    entry = figures.average_entry if still_open else figures.entry_price
    return {
        "symbol": order.symbol,
        "exchange": order.exchange,
        "side": order.position_side,
        "entry_price": entry,
        "quantity": quantity,
        "margin": figures.open_cost,
        "status": status.value,
        "entry_time": figures.entry_time,
    }
