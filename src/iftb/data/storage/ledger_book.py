"""What a series' orders, fills and funding make, computed whole and in memory.

The one-at-a-time path reaches the ledger event by event; recording a history in bulk
(``LedgerRepository.record_history``) computes it here from everything of one series (an
exchange and a symbol of a scope) at once, with the same rules, so either path gives the same
rows (tested). Pure: no database, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from iftb.data.storage.enums import (
    FINAL_ORDER_STATUSES,
    OrderStatus,
    OrderType,
    PositionStatus,
    Side,
)
from iftb.data.storage.errors import ConflictError, ValidationError
from iftb.data.storage.ledger_math import (
    Execution,
    TradeFigures,
    average_price,
    fill_order,
    trade_figures,
    units,
)
from iftb.data.storage.ledger_records import Fill, FundingPayment, Order


def order_progress(order: Order, fills: Sequence[Fill]) -> dict[str, Any]:
    """The order's filled quantity, average fill price (exact, rounded once, half up) and
    status with ``fills`` (all of its fills); fills adding up to more than the order are
    refused."""
    filled, average = average_price((fill.price, fill.quantity) for fill in fills)
    if filled > order.quantity:
        raise ValidationError(
            f"quantity: the fills of order {order.client_order_id!r} add up to {filled}, "
            f"more than its quantity {order.quantity}",
            field="quantity",
        )
    status = order.status
    if status not in FINAL_ORDER_STATUSES and filled:
        status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
    return {
        "filled_quantity": filled,
        "average_fill_price": average,
        "status": str(status),  # the value (a StrEnum's str), cheaper than OrderStatus(...).value
    }


def check_fill(order: Order, fill: Fill, earlier: Sequence[Fill]) -> None:
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


def check_same_trade(order: Order, other: Order | None) -> None:
    """Every order of a trade is on the trade's exchange, symbol and position side."""
    if other is None:
        return
    mine = (order.exchange, order.symbol, order.position_side)
    theirs = (other.exchange, other.symbol, other.position_side)
    if mine != theirs:
        raise ValidationError(
            f"trade_id: order {order.client_order_id!r} is a {' '.join(mine)} order, but trade "
            f"{order.trade_id!r} is a {' '.join(theirs)} trade",
            field="trade_id",
        )


REPLAY_TERMS: dict[type, tuple[str, ...]] = {
    Order: (
        "trade_id", "symbol", "side", "position_side", "order_type", "quantity", "price",
        "stop_price", "time_in_force", "reduce_only",
    ),
    Fill: (
        "client_order_id", "side", "price", "quantity", "fee", "fee_asset", "fee_quote",
        "is_maker", "filled_at", "sequence",
    ),
    FundingPayment: ("amount", "rate", "position_size", "mark_price"),
}  # fmt: skip
"""What makes a record the same one when it is recorded again under its key. An order's status,
fills, exchange id and payload move after it is placed; its ``placed_at`` is when the bot built
it. A payment's ``reported_time`` is one of its several stamps of one funding time."""


LedgerRecord = Order | Fill | FundingPayment


def check_replay(known: LedgerRecord, again: LedgerRecord) -> None:
    """A record recorded again under its key must carry the stored terms: anything else is a
    ``ConflictError`` naming the key and each term that differs."""
    terms = REPLAY_TERMS[type(known)]
    differing = [name for name in terms if getattr(known, name) != getattr(again, name)]
    if differing:
        details = ", ".join(
            f"{name} {_shown(getattr(again, name))} (stored {_shown(getattr(known, name))})"
            for name in differing
        )
        raise ConflictError(
            f"{_named(known)} is already recorded with other terms: {details}; nothing was written"
        )


def _named(record: LedgerRecord) -> str:
    if isinstance(record, Order):
        return f"order {record.client_order_id!r} on {record.exchange}"
    if isinstance(record, Fill):
        return f"fill {record.exchange_fill_id!r} of {record.exchange} {record.symbol}"
    return (
        f"funding payment of {record.exchange} {record.symbol} {record.position_side} at "
        f"{record.funding_time.isoformat()}"
    )


def _shown(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "none" if value is None else str(value)


def executions(fills: Iterable[Fill], liquidation_orders: Iterable[str]) -> list[Execution]:
    """What the arithmetic needs of ``fills``; those of ``liquidation_orders`` (client order
    ids) close by liquidation."""
    liquidating = set(liquidation_orders)
    return [
        Execution(
            fill_order(fill.filled_at, fill.sequence, fill.exchange_fill_id),
            fill.exchange_fill_id,
            fill.side,
            units(fill.price),
            units(fill.quantity),
            units(fill.quote_fee),
            fill.filled_at,
            fill.client_order_id in liquidating,
        )
        for fill in fills
    ]


def funding_owner(
    funding_time: datetime, windows: Sequence[tuple[datetime, datetime | None, str]]
) -> str | None:
    """The trade open at ``funding_time`` among ``windows`` (entry, exit, trade id) of one
    side of a symbol: the latest to enter of those open then, exit included."""
    owner, entered = None, None
    for entry, exit_time, trade_id in windows:
        open_then = entry <= funding_time and (exit_time is None or funding_time <= exit_time)
        if open_then and (entered is None or entry > entered):
            owner, entered = trade_id, entry
    return owner


def position_status(figures: TradeFigures, latest_entry: datetime) -> PositionStatus:
    """A trade's position: open while something is open and no later trade of its side has
    begun (then its last fills are still on their way: it ended); else closed or liquidated."""
    if not figures.is_closed and figures.open_quantity > 0:
        return PositionStatus.OPEN if figures.entry_time >= latest_entry else PositionStatus.CLOSED
    return PositionStatus.LIQUIDATED if figures.liquidated else PositionStatus.CLOSED


def in_exchange_order(fills: Iterable[Fill]) -> list[Fill]:
    """``fills`` in their exchange's order (``fill_order``)."""
    return sorted(fills, key=_place)


def _place(fill: Fill) -> tuple[object, ...]:
    return fill_order(fill.filled_at, fill.sequence, fill.exchange_fill_id)


@dataclass
class SeriesBook:
    """Everything of one series, by natural key: orders by client order id, fills by exchange
    fill id, funding by (position side, funding time)."""

    orders: dict[str, Order] = field(default_factory=dict)
    fills: dict[str, Fill] = field(default_factory=dict)
    funding: dict[tuple[str, datetime], FundingPayment] = field(default_factory=dict)

    def fills_by_order(self) -> dict[str, list[Fill]]:
        """Each known order's fills, in time order (fills still waiting for theirs left out)."""
        mine: dict[str, list[Fill]] = defaultdict(list)
        for fill in in_exchange_order(self.fills.values()):
            if fill.client_order_id in self.orders:
                mine[fill.client_order_id].append(fill)
        return mine

    def trades(
        self, fills_by_order: Mapping[str, Sequence[Fill]]
    ) -> tuple[dict[str, TradeFigures], dict[tuple[str, datetime], str | None]]:
        """Each trade's figures with its funding, and each funding payment's trade (None when
        no trade was open then)."""
        orders_of: dict[str, list[Order]] = defaultdict(list)
        for order in self.orders.values():
            orders_of[order.trade_id].append(order)
        made: dict[str, TradeFigures] = {}
        windows: dict[str, list[tuple[datetime, datetime | None, str]]] = defaultdict(list)
        for trade_id, orders in orders_of.items():
            side = Side(orders[0].position_side)
            fills = [f for order in orders for f in fills_by_order.get(order.client_order_id, ())]
            liquidating = (
                o.client_order_id for o in orders if o.order_type == OrderType.LIQUIDATION
            )
            figures = trade_figures(side, executions(fills, liquidating))
            if figures is not None:
                made[trade_id] = figures
                windows[side].append((figures.entry_time, figures.exit_time, trade_id))
        owners = {key: funding_owner(key[1], windows[key[0]]) for key in self.funding}
        paid: dict[str, list[Decimal]] = defaultdict(list)
        for key, owner in owners.items():
            if owner is not None:
                paid[owner].append(self.funding[key].amount)
        for trade_id, amounts in paid.items():
            made[trade_id] = made[trade_id].with_funding(amounts)
        return made, owners
