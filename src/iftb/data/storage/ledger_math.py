"""How a trade follows its fills and funding payments: exact, whatever order they arrived in.

A trade's fills are applied in time order (ties by exchange fill id), so the same fills give the
same trade however a websocket delivered them. Average-cost accounting, as exchanges and
freqtrade keep it:

* an opening fill (buy on a long, sell on a short) moves the average entry price:
  ``avg ← (avg × open + price × q) / (open + q)``;
* a closing fill realises ``(price − avg) × q`` on a long, ``(avg − price) × q`` on a short;
* ``realized_pnl = Σ realised − Σ fees + Σ funding`` (funding received is positive).

Leverage changes the margin and the percentages, never the absolute PnL. Values are computed
exactly and rounded once, half up, to the column's 8 places.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from operator import attrgetter
from typing import NamedTuple

from iftb.data.storage.enums import OrderSide, Side

ZERO = Decimal(0)
MONEY = Decimal("1e-8")
"""The 8 places of a money column."""


class Execution(NamedTuple):
    """What the arithmetic needs of a fill (a tuple: a history builds one per fill)."""

    fill_id: str
    side: str
    """``OrderSide``'s value."""
    price: Decimal
    quantity: Decimal
    fee: Decimal
    at: datetime
    liquidation: bool = False
    order: str = ""
    """The client order id of the fill's order."""


@dataclass(frozen=True, slots=True)
class TradeFigures:
    """A trade as its fills and funding make it."""

    entry_price: Decimal
    """Volume-weighted price of the opening fills."""
    quantity: Decimal
    """Everything opened (scale-ins included)."""
    open_quantity: Decimal
    """Still open: zero once closed."""
    average_entry: Decimal
    """The average entry of what is still open (the position's entry price)."""
    exit_price: Decimal | None
    """Volume-weighted price of the closing fills."""
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    realized_pnl: Decimal
    entry_time: datetime
    exit_time: datetime | None
    """The last closing fill's time, once nothing is open."""
    liquidated: bool
    late_fill: Execution | None = None
    """A fill after the trade had closed (net quantity back to zero): history re-opened,
    which the callers refuse."""
    closed_at: datetime | None = None
    """When the net quantity first came back to zero."""
    net: Decimal = field(default=ZERO, compare=False, repr=False)
    """``realised − fees``, exact (before funding and rounding): what ``with_funding`` adds
    funding to."""

    @property
    def is_closed(self) -> bool:
        return self.exit_time is not None

    def with_funding(self, funding: Iterable[Decimal]) -> TradeFigures:
        """The same trade with ``funding`` (replacing any before): funding moves neither its
        fills' figures nor its window, so a history computes each trade once."""
        with localcontext(prec=60):
            paid = sum(funding, ZERO)
            return replace(self, funding=paid, realized_pnl=_money(self.net + paid))


def trade_figures(
    position_side: Side, executions: Iterable[Execution], funding: Iterable[Decimal] = ()
) -> TradeFigures | None:
    """The trade made by ``executions`` (any order) and ``funding``; None without an opening
    fill yet (a closing fill that arrived first waits for it).

    A closing fill beyond what is open, in time order, is counted as closing what is open and
    no more is realised on the excess: it can only be a fill whose opening fill has not arrived
    yet (``open_quantity`` is then negative, and the trade stays open until it does).
    """
    opening = OrderSide.BUY if position_side == Side.LONG else OrderSide.SELL
    direction = 1 if position_side == Side.LONG else -1
    ordered = sorted(executions, key=_TIME_ORDER)
    with localcontext(prec=60):
        average, held, realised, fees = ZERO, ZERO, ZERO, ZERO
        opened, opened_cost, closed, closed_value = ZERO, ZERO, ZERO, ZERO
        first: datetime | None = None
        last_close: datetime | None = None
        liquidated = False
        closed_at: datetime | None = None
        late: Execution | None = None
        for fill in ordered:
            if closed_at is not None and late is None:
                late = fill
            fees += fill.fee
            held_long = held if held >= ZERO else ZERO  # max(held, 0)
            if fill.side == opening:
                first = first or fill.at
                cost = fill.price * fill.quantity
                average = (average * held_long + cost) / (held_long + fill.quantity)
                held += fill.quantity
                opened += fill.quantity
                opened_cost += cost
            else:
                taken = fill.quantity if fill.quantity <= held_long else held_long  # min()
                realised += direction * (fill.price - average) * taken
                held -= fill.quantity
                closed += fill.quantity
                closed_value += fill.price * fill.quantity
                last_close = fill.at
                liquidated = liquidated or fill.liquidation
                if held == 0 and closed_at is None:
                    closed_at = fill.at
        if first is None:
            return None
        net = realised - fees
        paid = sum(funding, ZERO)
        return TradeFigures(
            entry_price=_money(opened_cost / opened),
            quantity=opened,
            open_quantity=held,
            average_entry=_money(average),
            exit_price=_money(closed_value / closed) if closed else None,
            gross_pnl=_money(realised),
            fees=fees,
            funding=paid,
            realized_pnl=_money(net + paid),
            entry_time=first,
            exit_time=last_close if held == 0 and closed else None,
            liquidated=liquidated,
            late_fill=late,
            closed_at=closed_at,
            net=net,
        )


_TIME_ORDER = attrgetter("at", "fill_id")
"""Fills in time order, ties by exchange fill id."""


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_UP)
