"""LedgerRepository: orders, fills and funding payments, and the trades and positions they make.

Recording is idempotent and order-independent: an exchange fill id or a funding time recorded
twice counts once, a fill may arrive before its order (it waits, stored, and is applied when the
order comes), and the trade is recomputed from all of its fills and funding each time
(``ledger_math``), so any arrival order gives the same ledger. Writes of one symbol of a scope
are serialised (``lock_ledger``), so two processes recording the same stream agree too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, insert, or_, select, update

from iftb.data.storage.enums import (
    FINAL_ORDER_STATUSES,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionStatus,
    Side,
    TradeAction,
)
from iftb.data.storage.errors import ConflictError, NotFoundError, ValidationError
from iftb.data.storage.ledger_math import Execution, TradeFigures, trade_figures
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.ledger_records import Fill, FundingPayment, Order
from iftb.data.storage.models import PositionModel, TradeModel
from iftb.data.storage.repositories.base import all_records, one_or_none, touched
from iftb.data.storage.repositories.journal.rows import lock_ledger
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.repositories.journal.trades import pnl_percent
from iftb.data.storage.validation import choice_rule

_ORDERS = OrderModel.__table__.columns
_FILLS = FillModel.__table__.columns
_FUNDING = FundingPaymentModel.__table__.columns
_status = choice_rule("status", OrderStatus)
_OPEN_POSITION = PositionModel.status == PositionStatus.OPEN.value


class LedgerRepository(ScopedRepository):
    """A scope's orders, fills and funding payments."""

    async def record_order(self, order: Order) -> Order:
        """Store an order (recording the same client order id again returns the stored one),
        then apply the fills that arrived before it."""
        order.validate()
        await lock_ledger(
            await self._session.connection(), self.scope, order.exchange, order.symbol
        )
        stored = await self._order(order.exchange, order.client_order_id)
        if stored is None:
            values = self._row_values(order, OrderModel)
            values |= {"filled_quantity": Decimal(0), "average_fill_price": None}
            statement = insert(OrderModel).values(values).returning(*_ORDERS)
            stored = one_or_none(Order, await self._write(statement))
            assert stored is not None
        elif _identity(stored) != _identity(order):
            raise ConflictError(
                f"client_order_id: {order.client_order_id!r} is already an order of "
                f"{stored.symbol} {stored.side} {stored.quantity} ({stored.trade_id}); "
                "nothing was written"
            )
        waiting = await self._fills(FillModel.client_order_id == stored.client_order_id)
        if waiting:
            return await self._apply(stored, waiting)
        return stored

    async def update_order(
        self,
        exchange: str,
        client_order_id: str,
        *,
        status: str | None = None,
        exchange_order_id: str | None = None,
        raw: Any = None,
    ) -> Order:
        """Move an order to ``status`` (only legal transitions) and/or set its exchange id."""
        stored = await self._order(exchange, client_order_id)
        if stored is None:
            raise NotFoundError(f"no order {client_order_id!r} on {exchange} in {self.scope}")
        values: dict[str, Any] = {}
        if status is not None:
            target = _status(status)
            _check_transition(stored, target)
            values["status"] = target.value
        if exchange_order_id is not None:
            values["exchange_order_id"] = exchange_order_id
        if raw is not None:
            values["raw"] = raw
        dataclasses.replace(stored, **values)  # validates the changed order
        updated = await self._update_if_current(OrderModel, Order, stored, values)
        if updated is None:
            raise ConflictError(f"order {client_order_id!r} changed meanwhile; nothing written")
        return updated

    async def record_fill(self, fill: Fill) -> Fill:
        """Store a fill (the same exchange fill id again is a no-op returning the stored one)
        and apply it: its order's filled quantity, average price and status, the trade and
        the position follow. A fill whose order is not recorded yet waits for it."""
        fill.validate()
        await self._lock(fill.exchange, fill.symbol)
        stored = await self._stored_fill(fill)
        if stored is not None:
            return stored
        order = await self._order(fill.exchange, fill.client_order_id)
        if order is not None:
            _check_fill(order, fill, await self._fills(FillModel.order_id == order.id))
            await self._refuse_after_close(order.trade_id, fill)
        values = self._row_values(fill, FillModel) | {"order_id": None}
        statement = insert(FillModel).values(values).returning(*_FILLS)
        stored = one_or_none(Fill, await self._write(statement))
        assert stored is not None
        if order is not None:
            await self._apply(order, [stored])
        return stored

    async def record_funding(self, payment: FundingPayment) -> FundingPayment:
        """Store a funding payment (the same symbol, side and time again is a no-op) and add
        it to the trade that was open then."""
        payment.validate()
        await self._lock(payment.exchange, payment.symbol)
        key = (
            self._in_scope(FundingPaymentModel),
            FundingPaymentModel.exchange == payment.exchange,
            FundingPaymentModel.symbol == payment.symbol,
            FundingPaymentModel.position_side == payment.position_side,
            FundingPaymentModel.funding_time == payment.funding_time,
        )
        found = await self._execute(select(*_FUNDING).where(*key))
        stored = one_or_none(FundingPayment, found)
        if stored is not None:
            return stored
        values = self._row_values(payment, FundingPaymentModel) | {"trade_id": None}
        statement = insert(FundingPaymentModel).values(values).returning(*_FUNDING)
        stored = one_or_none(FundingPayment, await self._write(statement))
        assert stored is not None
        trade_id = await self._trade_open_at(stored)
        if trade_id is not None:
            await self._follow(trade_id)
        return one_or_none(FundingPayment, await self._execute(select(*_FUNDING).where(*key)))  # type: ignore[return-value]

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

    # --- applying fills ---------------------------------------------------------------------

    async def _apply(self, order: Order, fills: Sequence[Fill]) -> Order:
        """Link ``fills`` to ``order``, then bring the order and its trade up to date."""
        ids = [fill.id for fill in fills]
        await self._write(update(FillModel).where(FillModel.id.in_(ids)).values(order_id=order.id))
        mine = await self._fills(FillModel.order_id == order.id)
        filled = sum((fill.quantity for fill in mine), Decimal(0))
        if filled > order.quantity:
            raise ValidationError(
                f"quantity: the fills of order {order.client_order_id!r} add up to {filled}, "
                f"more than its quantity {order.quantity}",
                field="quantity",
            )
        cost = sum((fill.price * fill.quantity for fill in mine), Decimal(0))
        status = order.status
        if status not in FINAL_ORDER_STATUSES:
            status = (
                OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
            )
        values = {
            "filled_quantity": filled,
            "average_fill_price": (cost / filled).quantize(Decimal("1e-8")) if filled else None,
            "status": status,
        }
        statement = (
            update(OrderModel)
            .where(OrderModel.id == order.id)
            .values(values | touched(OrderModel) | {"version": OrderModel.version + 1})
            .returning(*_ORDERS)
        )
        updated = one_or_none(Order, await self._write(statement))
        assert updated is not None
        await self._follow(order.trade_id)
        return updated

    async def _follow(self, trade_id: str) -> None:
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

    async def _refuse_after_close(self, trade_id: str, fill: Fill) -> None:
        """A fill after its trade closed would re-open history: refused."""
        statement = select(TradeModel.action, TradeModel.exit_time).where(
            self._in_scope(TradeModel), TradeModel.trade_id == trade_id
        )
        trade = (await self._execute(statement)).first()
        if trade is not None and trade.exit_time is not None and fill.filled_at > trade.exit_time:
            raise ValidationError(
                f"filled_at: fill {fill.exchange_fill_id!r} at {fill.filled_at.isoformat()} is "
                f"for trade {trade_id!r}, {trade.action} at {trade.exit_time.isoformat()}",
                field="filled_at",
            )

    # --- reads ------------------------------------------------------------------------------

    async def _lock(self, exchange: str, symbol: str) -> None:
        await lock_ledger(await self._session.connection(), self.scope, exchange, symbol)

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


def _identity(order: Order) -> tuple[Any, ...]:
    """What makes an order the same order when it is recorded again."""
    return (order.trade_id, order.symbol, order.side, order.position_side, order.quantity)


def _check_transition(order: Order, target: OrderStatus) -> None:
    current = OrderStatus(order.status)
    if current == target:
        return
    legal = current == OrderStatus.NEW or (
        current == OrderStatus.PARTIALLY_FILLED
        and target not in (OrderStatus.NEW, OrderStatus.REJECTED)
    )
    if current in FINAL_ORDER_STATUSES or not legal:
        raise ConflictError(
            f"status: order {order.client_order_id!r} cannot go from {current} to {target}"
        )


def _check_fill(order: Order, fill: Fill, earlier: Sequence[Fill]) -> None:
    """A fill must match its order's symbol and side and fit what remains of it."""
    if (fill.symbol, fill.side) != (order.symbol, order.side):
        raise ValidationError(
            f"side: fill {fill.exchange_fill_id!r} is a {fill.symbol} {fill.side}, its order "
            f"{order.client_order_id!r} a {order.symbol} {order.side}",
            field="side",
        )
    remaining = order.quantity - sum((f.quantity for f in earlier), Decimal(0))
    if fill.quantity > remaining:
        raise ValidationError(
            f"quantity: fill {fill.exchange_fill_id!r} of {fill.quantity} exceeds the "
            f"{remaining.normalize():f} remaining of order {order.client_order_id!r}",
            field="quantity",
        )
