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

from sqlalchemy import insert, select, update

from iftb.data.storage.enums import (
    FINAL_ORDER_STATUSES,
    OrderStatus,
    PositionStatus,
)
from iftb.data.storage.errors import ConflictError, NotFoundError
from iftb.data.storage.ledger_book import (
    check_fill,
    check_replay,
    check_same_trade,
    order_progress,
)
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.ledger_records import (
    ExchangePosition,
    Fill,
    FundingPayment,
    HistoryCounts,
    Order,
    PositionDifference,
)
from iftb.data.storage.models import PositionModel
from iftb.data.storage.repositories.audit.system_events import SystemEventRepository
from iftb.data.storage.repositories.base import in_one_savepoint, one_or_none, touched
from iftb.data.storage.repositories.journal.ledger_history import HistoryWriter
from iftb.data.storage.repositories.journal.positions import PositionRepository
from iftb.data.storage.repositories.journal.rows import lock_ledger
from iftb.data.storage.repositories.journal.trade_follower import TradeFollower
from iftb.data.storage.validation import choice_rule

_ORDERS = OrderModel.__table__.columns
_FILLS = FillModel.__table__.columns
_FUNDING = FundingPaymentModel.__table__.columns
_status = choice_rule("status", OrderStatus)
_OPEN_POSITION = PositionModel.status == PositionStatus.OPEN.value


class LedgerRepository(TradeFollower):
    """A scope's orders, fills and funding payments."""

    @in_one_savepoint
    async def record_order(self, order: Order) -> Order:
        """Store an order (recording the same client order id again returns the stored one),
        then apply the fills that arrived before it."""
        order.validate()
        await lock_ledger(
            await self._session.connection(), self.scope, order.exchange, order.symbol
        )
        stored = await self._order(order.exchange, order.client_order_id)
        if stored is None:
            check_same_trade(order, await self._an_order_of(order.trade_id))
            values = self._row_values(order, OrderModel)
            values |= {"filled_quantity": Decimal(0), "average_fill_price": None}
            statement = insert(OrderModel).values(values).returning(*_ORDERS)
            stored = one_or_none(Order, await self._execute(statement))
            assert stored is not None
        else:
            check_replay(stored, order)
        waiting = await self._fills(
            (FillModel.exchange == stored.exchange)
            & (FillModel.client_order_id == stored.client_order_id)
        )
        if not waiting:
            return stored
        for fill in waiting:
            check_fill(stored, fill, [])  # each one's symbol and side; the sum in _settle
        return await self._apply(stored, waiting)

    @in_one_savepoint
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

    @in_one_savepoint
    async def record_fill(self, fill: Fill) -> Fill:
        """Store a fill and apply it: its order's filled quantity, average price and status,
        the trade and the position follow. A fill whose order is not recorded yet waits for it.
        The same exchange fill id again is a no-op returning the stored fill, or a
        ``ConflictError`` when any of its terms differs."""
        fill.validate()
        await self._lock(fill.exchange, fill.symbol)
        stored = await self._stored_fill(fill)
        if stored is not None:
            check_replay(stored, fill)
            return stored
        order = await self._order(fill.exchange, fill.client_order_id)
        earlier: list[Fill] = []
        if order is not None:
            earlier = await self._fills(FillModel.order_id == order.id)
            check_fill(order, fill, earlier)
        values = self._row_values(fill, FillModel) | {"order_id": order and order.id}
        statement = insert(FillModel).values(values).returning(*_FILLS)
        stored = one_or_none(Fill, await self._execute(statement))
        assert stored is not None
        if order is not None:
            await self._settle(order, [*earlier, stored])
        return stored

    @in_one_savepoint
    async def record_funding(self, payment: FundingPayment) -> FundingPayment:
        """Store a funding payment and add it to the trade that was open then. The same
        symbol, side and funding interval again is a no-op, or a ``ConflictError`` when its
        amount or another term differs."""
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
            check_replay(stored, payment)
            return stored
        values = self._row_values(payment, FundingPaymentModel) | {"trade_id": None}
        statement = insert(FundingPaymentModel).values(values).returning(*_FUNDING)
        stored = one_or_none(FundingPayment, await self._execute(statement))
        assert stored is not None
        trade_id = await self._trade_open_at(stored)
        if trade_id is not None:
            await self.follow(trade_id)
        return one_or_none(FundingPayment, await self._execute(select(*_FUNDING).where(*key)))  # type: ignore[return-value]

    async def record_history(
        self,
        orders: Sequence[Order] = (),
        fills: Sequence[Fill] = (),
        funding: Sequence[FundingPayment] = (),
    ) -> HistoryCounts:
        """Record a whole history at once (a backfill, a backtest's ledger) in bulk: the same
        ledger as recording each event, in any order, and replays count once. A bad record
        rejects the batch, naming its list and row; nothing is written."""
        return await HistoryWriter(self.session, self.scope).record(orders, fills, funding)

    async def reconcile(
        self,
        reported: Sequence[ExchangePosition],
        exchange: str = "binance",
        *,
        record_events: bool = False,
    ) -> list[PositionDifference]:
        """Where the exchange's open positions differ from the ledger's: a side open on one
        only, another size, another entry price. ``record_events`` logs each as a warning."""
        ledger = {
            (p.symbol, p.side): p
            for p in await PositionRepository(self.session, self.scope).get_open_positions(exchange)
        }
        theirs = {(p.symbol, p.side): p for p in reported if p.size}
        differences = []
        for key in sorted(ledger.keys() | theirs.keys()):
            ours, exchange_side = ledger.get(key), theirs.get(key)
            difference = PositionDifference(
                symbol=key[0],
                side=key[1],
                exchange_size=exchange_side.size if exchange_side else Decimal(0),
                ledger_size=ours.quantity if ours else Decimal(0),
                exchange_entry_price=exchange_side.entry_price if exchange_side else None,
                ledger_entry_price=ours.entry_price if ours else None,
            )
            if difference.differs:
                differences.append(difference)
        if record_events:
            events = SystemEventRepository(self.session, self.scope)
            for found in differences:
                await events.log_event(
                    "reconciliation",
                    "warning",
                    f"{found.symbol} {found.side}: {found.problem}",
                    details={
                        "exchange_size": str(found.exchange_size),
                        "ledger_size": str(found.ledger_size),
                        "exchange_entry_price": _text(found.exchange_entry_price),
                        "ledger_entry_price": _text(found.ledger_entry_price),
                    },
                    symbol=found.symbol,
                    exchange=exchange,
                )
        return differences

    # --- applying fills ---------------------------------------------------------------------

    async def _apply(self, order: Order, fills: Sequence[Fill]) -> Order:
        """Link ``fills`` (which arrived before ``order``) to it, then settle the order."""
        ids = [fill.id for fill in fills]
        await self._execute(
            update(FillModel).where(FillModel.id.in_(ids)).values(order_id=order.id)
        )
        return await self._settle(order, await self._fills(FillModel.order_id == order.id))

    async def _settle(self, order: Order, mine: Sequence[Fill]) -> Order:
        """The order's filled quantity, average price and status from all of its fills
        (``mine``), then its trade and position."""
        statement = (
            update(OrderModel)
            .where(OrderModel.id == order.id)
            .values(
                order_progress(order, mine)
                | touched(OrderModel)
                | {"version": OrderModel.version + 1}
            )
            .returning(*_ORDERS)
        )
        updated = one_or_none(Order, await self._execute(statement))
        assert updated is not None
        await self.follow(order.trade_id)
        return updated

    # --- reads ------------------------------------------------------------------------------

    async def _lock(self, exchange: str, symbol: str) -> None:
        await lock_ledger(await self._session.connection(), self.scope, exchange, symbol)


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


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
