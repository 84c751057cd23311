"""How a trade follows its fills and funding payments: exact, whatever order they arrived in.

A trade's fills are applied in the exchange's order (``fill_order``), so the same fills give the
same trade however a websocket delivered them. Average-cost accounting, as exchanges and
freqtrade keep it:

* an opening fill (buy on a long, sell on a short) adds ``price × q`` to the cost of what is
  open; the average entry is that cost over the open quantity;
* a closing fill of ``q`` realises ``(price − average) × q`` on a long, ``(average − price) × q``
  on a short, and takes ``q``'s share of the cost with it (the average is unchanged);
* ``realized_pnl = Σ realised − Σ fees + Σ funding`` (funding received is positive).

Leverage changes the margin and the percentages, never the absolute PnL. Every value is computed
exactly, in integers (amounts in whole 10⁻⁸, and fractions of them as integer pairs), and rounded
once, half up, to its column's places.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from math import gcd
from operator import attrgetter
from typing import Any, NamedTuple

from iftb.data.storage.enums import OrderSide, Side

ZERO = Decimal(0)
MONEY = Decimal("1e-8")
"""The 8 places of a money column."""
UNITS = 10**8
"""Money columns hold 8 places: a validated amount is a whole number of 10⁻⁸."""
MONEY_PLACES = 8
PERCENT_PLACES = 4


def units(value: Decimal) -> int:
    """``value`` (at most 8 places: every validated amount) in whole 10⁻⁸."""
    return int(value.scaleb(MONEY_PLACES))


def half_up(numerator: int, denominator: int = 1, places: int = MONEY_PLACES) -> Decimal:
    """``numerator / denominator`` (denominator > 0) rounded once, half up (away from zero at a
    tie), to ``places``: integer arithmetic only."""
    whole, rest = divmod(abs(numerator) * _POWERS[places], denominator)
    if 2 * rest >= denominator:
        whole += 1
    return Decimal(-whole if numerator < 0 else whole).scaleb(-places)


_POWERS = {MONEY_PLACES: 10**MONEY_PLACES, PERCENT_PLACES: 10**PERCENT_PLACES}


def fill_order(filled_at: datetime, sequence: int | None, fill_id: str) -> tuple[object, ...]:
    """Where a fill stands in its exchange's order: by time; in one instant by the exchange's
    sequence number when it gives one (those that carry one first), then by fill id, integer
    ids as integers (fill 9 before fill 10) and before any other id, others as text."""
    numeric = fill_id.isascii() and fill_id.isdigit()
    return (
        filled_at,
        sequence is None,
        sequence or 0,
        not numeric,
        int(fill_id) if numeric else 0,
        fill_id,
    )


class Execution(NamedTuple):
    """What the arithmetic needs of a fill (a tuple: a history builds one per fill)."""

    place: tuple[object, ...]
    """``fill_order`` of the fill: executions sort by it."""
    fill_id: str
    side: str
    """``OrderSide``'s value."""
    price: int
    """In 10⁻⁸ (``units``), as ``quantity`` and ``fee``."""
    quantity: int
    fee: int
    at: datetime
    liquidation: bool = False


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
    open_cost: Decimal
    """What is open at its average entry (the position's margin at leverage 1); while nothing
    is, everything opened at its entry price."""
    exit_price: Decimal | None
    """Volume-weighted price of the closing fills."""
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    realized_pnl: Decimal
    realized_pnl_pct: Decimal
    """``realized_pnl`` over everything opened at its entry price, × 100 (leverage 1)."""
    entry_time: datetime
    exit_time: datetime | None
    """The last closing fill's time, once nothing is open."""
    liquidated: bool
    net: tuple[int, int] = (0, 1)
    """``realised − fees`` in 10⁻¹⁶, exact, as (numerator, denominator): what
    ``with_funding`` adds funding to."""
    opened_cost: int = 1
    """Everything opened at its price, in 10⁻¹⁶."""

    @property
    def is_closed(self) -> bool:
        return self.exit_time is not None

    def with_funding(self, funding: Iterable[Decimal]) -> TradeFigures:
        """The same trade with ``funding`` (replacing any before): funding moves neither its
        fills' figures nor its window, so a history computes each trade once."""
        return replace(self, **_funded(self.net, self.opened_cost, funding))


def _funded(net: tuple[int, int], opened_cost: int, funding: Iterable[Decimal]) -> dict[str, Any]:
    """Funding, realized PnL and its percentage: ``net`` (realised − fees, 10⁻¹⁶) plus
    ``funding``, rounded once."""
    paid = sum(map(units, funding))
    numerator, denominator = net
    total = numerator + paid * UNITS * denominator
    return {
        "funding": half_up(paid, UNITS),
        "realized_pnl": half_up(total, denominator * UNITS * UNITS),
        "realized_pnl_pct": half_up(total * 100, denominator * opened_cost, PERCENT_PLACES),
    }


def trade_figures(
    position_side: Side, executions: Iterable[Execution], funding: Iterable[Decimal] = ()
) -> TradeFigures | None:
    """The trade made by ``executions`` (any order) and ``funding``; None without an opening
    fill yet (a closing fill that arrived first waits for it).

    A closing fill beyond what is open, in the exchange's order, closes what is open and no
    more is realised on the excess: it can only be a fill whose opening fill has not arrived
    yet (``open_quantity`` is then negative, and the trade stays open until it does).

    The cost of what is open is kept as an exact fraction of integers (``cost / scale``, in
    10⁻¹⁶): a partial close keeps ``(held − q) / held`` of it. What the closes realised is
    then, exactly, the value they closed at less the cost they took away: everything ever
    added to the cost, less what is left of it.
    """
    opening = OrderSide.BUY if position_side == Side.LONG else OrderSide.SELL
    held = fees = opened = opened_cost = closed = closed_value = added = taken_value = 0
    cost, scale = 0, 1
    first: datetime | None = None
    last_close: datetime | None = None
    liquidated = False
    for fill in sorted(executions, key=_PLACE):
        fees += fill.fee
        value = fill.price * fill.quantity
        if fill.side == opening:
            first = first or fill.at
            if held > 0:
                cost += value * scale
                added += value
            else:  # flat, or short of fills that have not arrived: what opens starts the cost
                cost, scale = fill.price * max(held + fill.quantity, 0), 1
                added += cost
            held += fill.quantity
            opened += fill.quantity
            opened_cost += value
        else:
            taken = min(fill.quantity, max(held, 0))
            if taken:
                taken_value += fill.price * taken
                cost, scale = cost * (held - taken), scale * held
                if scale > _NORMALISE_ABOVE:
                    common = gcd(cost, scale)
                    cost, scale = cost // common, scale // common
            held -= fill.quantity
            closed += fill.quantity
            closed_value += value
            last_close = fill.at
            liquidated = liquidated or fill.liquidation
    if first is None:
        return None
    direction = 1 if position_side == Side.LONG else -1
    realised = direction * ((taken_value - added) * scale + cost)  # over ``scale``, in 10⁻¹⁶
    still_open = held > 0
    net = (realised - fees * UNITS * scale, scale)
    return TradeFigures(
        entry_price=half_up(opened_cost, opened * UNITS),
        quantity=half_up(opened, UNITS),
        open_quantity=half_up(held, UNITS),
        average_entry=half_up(cost, scale * held * UNITS) if still_open else ZERO,
        open_cost=half_up(cost, scale * UNITS * UNITS)
        if still_open
        else half_up(opened_cost, UNITS * UNITS),
        exit_price=half_up(closed_value, closed * UNITS) if closed else None,
        gross_pnl=half_up(realised, scale * UNITS * UNITS),
        fees=half_up(fees, UNITS),
        entry_time=first,
        exit_time=last_close if held == 0 and closed else None,
        liquidated=liquidated,
        net=net,
        opened_cost=opened_cost,
        **_funded(net, opened_cost, funding),
    )


_NORMALISE_ABOVE = 2**512
"""Partial closes multiply the cost's denominator; past this it is reduced (``gcd``)."""


def average_price(fills: Iterable[tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal | None]:
    """The total quantity of ``fills`` ((price, quantity) each) and their volume-weighted
    price, rounded once, half up (None when nothing filled)."""
    filled = cost = 0
    for price, quantity in fills:
        filled += units(quantity)
        cost += units(price) * units(quantity)
    return half_up(filled, UNITS), half_up(cost, filled * UNITS) if filled else None


_PLACE = attrgetter("place")
