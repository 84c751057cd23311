"""How trades and positions follow the ledger: recomputed from all of a trade's fills and
funding each time one arrives (``ledger_math``), so any arrival order gives the same rows."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, insert, or_, select, update

from iftb.data.storage.enums import OrderSide, OrderType, PositionStatus, Side, TradeAction
from iftb.data.storage.ledger_math import Execution, TradeFigures, trade_figures
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.ledger_records import Fill, FundingPayment, FundingTotal, Order
from iftb.data.storage.models import PositionModel, TradeModel
from iftb.data.storage.repositories.base import all_records, one_or_none, touched
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.repositories.journal.trades import pnl_percent
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

    async def _stored_fill(self, fill: Fill) -> Fill | None:
        statement = select(*_FILLS).where(
            self._in_scope(FillModel),
            FillModel.exchange == fill.exchange,
            FillModel.symbol == fill.symbol,
            FillModel.exchange_fill_id == fill.exchange_fill_id,
        )
        return one_or_none(Fill, await self._execute(statement))

    async def _fills(self, condition: Any) -> list[Fill]:
        statement = (
            select(*_FILLS)
            .where(self._in_scope(FillModel), condition)
            .order_by(FillModel.filled_at, FillModel.exchange_fill_id)
        )
        return all_records(Fill, await self._execute(statement))

    async def _trade_open_at(self, payment: FundingPayment) -> str | None:
        """The trade of the payment's symbol and side open at its funding time, if any."""
        statement = (
            select(TradeModel.trade_id)
            .where(
                self._in_scope(TradeModel),
                TradeModel.exchange == payment.exchange,
                TradeModel.symbol == payment.symbol,
                TradeModel.side == payment.position_side,
                TradeModel.entry_time <= payment.funding_time,
                or_(TradeModel.exit_time.is_(None), TradeModel.exit_time >= payment.funding_time),
            )
            .order_by(TradeModel.entry_time.desc())
            .limit(1)
        )
        return (await self._execute(statement)).scalar_one_or_none()

    async def follow(self, trade_id: str) -> None:
        """Recompute trade ``trade_id`` and its position from all of its fills and funding."""
        orders = await self.orders_of_trade(trade_id)
        side = Side(orders[0].position_side)
        liquidation = {o.id for o in orders if o.order_type == OrderType.LIQUIDATION}
        executions = [
            Execution(
                fill.exchange_fill_id,
                OrderSide(fill.side),
                fill.price,
                fill.quantity,
                fill.quote_fee,
                fill.filled_at,
                fill.order_id in liquidation,
            )
            for fill in await self.fills_of_trade(trade_id)
        ]
        figures = trade_figures(side, executions)
        if figures is None:
            return
        funding = await self._link_funding(trade_id, orders[0], side, figures)
        figures = trade_figures(side, executions, funding)
        assert figures is not None
        await self._store_trade(trade_id, orders[0], side, figures)

    async def _link_funding(
        self, trade_id: str, order: Order, side: Side, figures: TradeFigures
    ) -> list[Decimal]:
        """The funding paid while the trade was open, [entry, exit], is the trade's: linked to
        it (and unlinked when a window shrinks); returns its amounts. One read of the series'
        payments, a write only where a payment changes hands."""
        statement = select(
            FundingPaymentModel.id,
            FundingPaymentModel.funding_time,
            FundingPaymentModel.amount,
            FundingPaymentModel.trade_id,
        ).where(
            self._in_scope(FundingPaymentModel),
            FundingPaymentModel.exchange == order.exchange,
            FundingPaymentModel.symbol == order.symbol,
            FundingPaymentModel.position_side == side.value,
            FundingPaymentModel.funding_time >= figures.entry_time,
        )
        mine, link, unlink = [], [], []
        for payment in await self._execute(statement):
            inside = figures.exit_time is None or payment.funding_time <= figures.exit_time
            if inside and payment.trade_id in (None, trade_id):
                mine.append(payment.amount)
                if payment.trade_id is None:
                    link.append(payment.id)
            elif not inside and payment.trade_id == trade_id:
                unlink.append(payment.id)
        for ids, owner in ((link, trade_id), (unlink, None)):
            if ids:
                await self._execute(
                    update(FundingPaymentModel)
                    .where(FundingPaymentModel.id.in_(ids))
                    .values(trade_id=owner)
                )
        return mine

    async def _store_trade(
        self, trade_id: str, order: Order, side: Side, figures: TradeFigures
    ) -> None:
        action = TradeAction.OPEN
        if figures.is_closed:
            action = TradeAction.LIQUIDATED if figures.liquidated else TradeAction.CLOSE
        values = {
            "symbol": order.symbol,
            "exchange": order.exchange,
            "side": side.value,
            "action": action.value,
            "entry_price": figures.entry_price,
            "quantity": figures.quantity,
            "exit_price": figures.exit_price,
            "fee": figures.fees,
            "funding": figures.funding,
            "realized_pnl": figures.realized_pnl,
            "realized_pnl_pct": pnl_percent(
                figures.realized_pnl, figures.entry_price, figures.quantity, Decimal(1)
            ),
            "entry_time": figures.entry_time,
            "exit_time": figures.exit_time,
        }
        row = values | {"trade_id": trade_id} | self.scope.values() | touched(TradeModel)
        await self._execute(self._scoped_upsert(TradeModel, row, ("trade_id",)))
        await self._store_position(trade_id, order, side, figures)

    async def _store_position(
        self, trade_id: str, order: Order, side: Side, figures: TradeFigures
    ) -> None:
        """One position row per trade, a function of its fills alone: open with what is still
        open, or closed (liquidated) with everything it held. A trade found open while a later
        one of the same side has begun must have closed (its last fills are still on their
        way): its position is closed, so that one position per side stays open."""
        still_open = not figures.is_closed and figures.open_quantity > 0
        status = PositionStatus.OPEN
        if not still_open:
            status = PositionStatus.LIQUIDATED if figures.liquidated else PositionStatus.CLOSED
        series = and_(
            self._in_scope(PositionModel),
            PositionModel.exchange == order.exchange,
            PositionModel.symbol == order.symbol,
            PositionModel.side == side.value,
        )
        found = await self._execute(
            select(
                PositionModel.id, PositionModel.trade_id, PositionModel.status,
                PositionModel.entry_time,
            ).where(series)
        )  # fmt: skip
        own, superseded = None, []
        for position in found:
            if position.trade_id == trade_id:
                own = position.id
            elif still_open and position.entry_time > figures.entry_time:
                status = PositionStatus.CLOSED  # a later trade has begun: this one ended
            elif still_open and position.status == PositionStatus.OPEN:
                superseded.append(position.id)
        if superseded and status == PositionStatus.OPEN:
            await self._execute(
                update(PositionModel)
                .where(PositionModel.id.in_(superseded))
                .values(status=PositionStatus.CLOSED.value, **touched(PositionModel))
            )
        quantity = figures.open_quantity if still_open else figures.quantity
        entry = figures.average_entry if still_open else figures.entry_price
        values = {
            "entry_price": entry,
            "quantity": quantity,
            "margin": (entry * quantity).quantize(Decimal("1e-8")),
            "status": status.value,
            "entry_time": figures.entry_time,
        }
        if own is None:
            await self._execute(
                insert(PositionModel).values(
                    values
                    | {"symbol": order.symbol, "exchange": order.exchange, "side": side.value}
                    | {"trade_id": trade_id}
                    | self.scope.values()
                )
            )
        else:
            await self._execute(
                update(PositionModel)
                .where(PositionModel.id == own)
                .values(values | touched(PositionModel) | {"version": PositionModel.version + 1})
            )
