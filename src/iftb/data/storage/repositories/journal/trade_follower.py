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
_OPEN_POSITION = PositionModel.status == PositionStatus.OPEN.value


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
        await self._link_funding(trade_id, orders[0], side, figures)
        funding = [p.amount for p in await self.funding_of_trade(trade_id)]
        figures = trade_figures(side, executions, funding)
        assert figures is not None
        await self._store_trade(trade_id, orders[0], side, figures)

    async def _link_funding(
        self, trade_id: str, order: Order, side: Side, figures: TradeFigures
    ) -> None:
        """The funding paid while the trade was open is the trade's: [entry, exit]."""
        within = FundingPaymentModel.funding_time >= figures.entry_time
        if figures.exit_time is not None:
            within &= FundingPaymentModel.funding_time <= figures.exit_time
        series = and_(
            self._in_scope(FundingPaymentModel),
            FundingPaymentModel.exchange == order.exchange,
            FundingPaymentModel.symbol == order.symbol,
            FundingPaymentModel.position_side == side.value,
        )
        await self._write(
            update(FundingPaymentModel)
            .where(series, FundingPaymentModel.trade_id == trade_id, ~within)
            .values(trade_id=None)
        )
        await self._write(
            update(FundingPaymentModel)
            .where(series, within, FundingPaymentModel.trade_id.is_(None))
            .values(trade_id=trade_id)
        )

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
        trade = and_(self._in_scope(TradeModel), TradeModel.trade_id == trade_id)
        exists = await self._execute(select(TradeModel.id).where(trade))
        if exists.first() is None:
            await self._write(
                insert(TradeModel).values(values | {"trade_id": trade_id} | self.scope.values())
            )
        else:
            await self._write(
                update(TradeModel)
                .where(trade)
                .values(values | touched(TradeModel) | {"version": TradeModel.version + 1})
            )
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
        if still_open:
            later = select(PositionModel.id).where(
                series, PositionModel.trade_id != trade_id,
                PositionModel.entry_time > figures.entry_time,
            )  # fmt: skip
            if (await self._execute(later)).first() is not None:
                status = PositionStatus.CLOSED
            else:
                await self._write(
                    update(PositionModel)
                    .where(series, PositionModel.trade_id != trade_id, _OPEN_POSITION)
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
        position = and_(series, PositionModel.trade_id == trade_id)
        if (await self._execute(select(PositionModel.id).where(position))).first() is None:
            await self._write(
                insert(PositionModel).values(
                    values
                    | {"symbol": order.symbol, "exchange": order.exchange, "side": side.value}
                    | {"trade_id": trade_id}
                    | self.scope.values()
                )
            )
        else:
            await self._write(
                update(PositionModel)
                .where(position)
                .values(values | touched(PositionModel) | {"version": PositionModel.version + 1})
            )
