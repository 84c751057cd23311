"""A futures account's history as the exchange makes it, and the ledger it must give, replayed
exactly from the exchange's rules in the order the exchange executed it.

``history(rng, ...)`` draws one: per symbol, hedge mode (longs and shorts at once) or one-way
(one side at a time); trades of scale-ins and partial closes, some ended by a liquidation, the
last of a series sometimes left open; each order filled in one to three parts, several of them
in one millisecond; fill ids that are integers rising with time, or (an exchange that numbers
its fills) unordered ids with a sequence number; fees in the quote asset or in BNB with their
quote value; funding on every whole hour a position is open, stamped up to 30 s off the hour,
sometimes twice.

``expected(history)`` is the reference: each trade's fills replayed in the exchange's order in
``Fraction`` (VWAP entry on increases, unchanged on reductions, PnL on each reduced quantity,
fees per fill, funding to the position open at its time), rounded half up once, to the column.
It shares no code with the library.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from iftb.data.storage import Fill, FundingPayment, Order

T0 = datetime(2025, 1, 6, tzinfo=UTC)


@dataclass
class Trade:
    trade_id: str
    symbol: str
    side: str
    fills: list[Fill] = field(default_factory=list)
    """In the exchange's order."""
    liquidated: bool = False
    funding: list[FundingPayment] = field(default_factory=list)


@dataclass
class History:
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    funding: list[FundingPayment] = field(default_factory=list)
    """Each payment once, stamped as the exchange first reported it."""
    stamps: list[FundingPayment] = field(default_factory=list)
    """The same payments reported again with another stamp (websocket vs REST)."""
    trades: dict[str, Trade] = field(default_factory=dict)

    def events(self) -> list[Order | Fill | FundingPayment]:
        return [*self.orders, *self.fills, *self.funding, *self.stamps]


def history(rng: random.Random, symbols: int, trades_per_series: int) -> History:
    made = History()
    for number in range(symbols):
        symbol = f"S{number}USDT"
        sequenced = rng.random() < 0.4
        sides = ("long", "short") if rng.random() < 0.6 else ("oneway",)
        line: list[tuple[Trade, int]] = []  # each fill: its trade, its place in the trade
        for side in sides:
            _series(made, rng, symbol, side, trades_per_series, line)
        # The exchange numbers the symbol's fills in time order across both sides, from an id
        # that soon gains a digit (fill 9, then fill 10), or unordered ids with a sequence.
        merged = sorted(line, key=lambda fill: fill[0].fills[fill[1]].filled_at)
        first = rng.choice((1, 95, 995))
        ids = rng.sample(range(1, 10**9), len(merged)) if sequenced else None
        for place, (trade, index) in enumerate(merged):
            named = replace(
                trade.fills[index],
                exchange_fill_id=str(ids[place] if ids else first + place),
                sequence=place if sequenced else None,
            )
            made.fills.append(named)
            trade.fills[index] = named
    for trade in made.trades.values():
        _fund(made, rng, trade)
    return made


def _series(
    made: History, rng: random.Random, symbol: str, side: str, trades: int,
    line: list[tuple[Trade, int]],
) -> None:  # fmt: skip
    clock = T0 + timedelta(minutes=rng.randint(0, 300))
    for number in range(trades):
        position = rng.choice(("long", "short")) if side == "oneway" else side
        trade = Trade(f"{symbol}-{side}-{number}", symbol, position)
        made.trades[trade.trade_id] = trade
        left_open = number == trades - 1 and rng.random() < 0.3
        clock = _trade(made, rng, trade, clock, line, left_open)
        clock += timedelta(minutes=rng.randint(5, 600))


def _trade(
    made: History, rng: random.Random, trade: Trade, clock: datetime,
    line: list[tuple[Trade, int]], left_open: bool,
) -> datetime:  # fmt: skip
    opening, closing = ("buy", "sell") if trade.side == "long" else ("sell", "buy")
    price = Decimal(rng.randint(1_000_000, 9_000_000)) / 100
    held = Decimal(0)
    legs = [opening] * rng.randint(1, 3)
    for index, _ in enumerate(legs):
        quantity = Decimal(rng.randint(1, 3_000)) / 1000
        clock = _order(made, rng, trade, f"{trade.trade_id}-o{index}", opening, quantity,
                       price, clock, "limit", line)  # fmt: skip
        held += quantity
        price += Decimal(rng.randint(-9_999, 9_999)) / 100
        if index < len(legs) - 1 and rng.random() < 0.5:  # a partial close between scale-ins
            part = (held * Decimal(rng.randint(10, 60)) / 100).quantize(Decimal("0.001"))
            if 0 < part < held:
                clock = _order(made, rng, trade, f"{trade.trade_id}-p{index}", closing, part,
                               price, clock, "market", line)  # fmt: skip
                held -= part
    if left_open:
        return clock
    liquidated = rng.random() < 0.15
    for index in range(3):
        last = index == 2 or rng.random() < 0.4
        part = (
            held if last else (held * Decimal(rng.randint(10, 60)) / 100).quantize(Decimal("0.001"))
        )
        part = held if part <= 0 or part >= held else part
        kind = "liquidation" if last and liquidated else "market"
        trade.liquidated = trade.liquidated or kind == "liquidation"
        clock = _order(made, rng, trade, f"{trade.trade_id}-c{index}", closing, part, price,
                       clock, kind, line)  # fmt: skip
        held -= part
        price += Decimal(rng.randint(-9_999, 9_999)) / 100
        if held == 0:
            break
    return clock


def _order(
    made: History, rng: random.Random, trade: Trade, client_id: str, side: str,
    quantity: Decimal, price: Decimal, clock: datetime, kind: str,
    line: list[tuple[Trade, int]],
) -> datetime:  # fmt: skip
    order = Order(
        client_order_id=client_id, trade_id=trade.trade_id, symbol=trade.symbol, side=side,
        position_side=trade.side, order_type=kind, quantity=quantity, placed_at=clock,
    )  # fmt: skip
    made.orders.append(order)
    parts, left = rng.randint(1, 3), quantity
    for part in range(parts):
        size = left if part == parts - 1 else (left * Decimal(rng.randint(20, 70)) / 100)
        size = size.quantize(Decimal("0.001"))
        if size <= 0 or size > left:
            continue
        # Several parts of one order, or of consecutive orders, in one millisecond.
        clock += rng.choice((timedelta(0), timedelta(milliseconds=1), timedelta(minutes=7),
                             timedelta(minutes=rng.randint(1, 200))))  # fmt: skip
        fill_price = price + Decimal(rng.randint(-500, 500)) / 100
        fee = (fill_price * size * Decimal("0.0004")).quantize(Decimal("1e-8"))
        in_bnb = rng.random() < 0.2
        fill = Fill(
            exchange_fill_id="unnamed", client_order_id=client_id, symbol=trade.symbol,
            side=side, price=fill_price, quantity=size, filled_at=clock,
            fee=max((fee / 600).quantize(Decimal("1e-8")), Decimal("1e-8")) if in_bnb else fee,
            fee_asset="BNB" if in_bnb else None, fee_quote=fee if in_bnb else None,
            is_maker=kind == "limit",
        )  # fmt: skip
        line.append((trade, len(trade.fills)))
        trade.fills.append(fill)
        left -= size
    return clock


def _fund(made: History, rng: random.Random, trade: Trade) -> None:
    """A payment on every whole hour strictly inside the trade's life (its position is open
    then), stamped up to 30 s off the hour; some reported a second time with another stamp."""
    start = trade.fills[0].filled_at
    end = trade.fills[-1].filled_at if _held(trade) == 0 else start + timedelta(hours=30)
    boundary = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while boundary < end:
        amount = Decimal(rng.randint(-900_000, 900_000)) / 10**7
        payment, again = (
            FundingPayment(symbol=trade.symbol, position_side=trade.side,
                           funding_time=boundary + _jitter(rng), amount=amount)
            for _ in range(2)
        )  # fmt: skip
        made.funding.append(payment)
        trade.funding.append(payment)
        if rng.random() < 0.3:
            made.stamps.append(again)
        boundary += timedelta(hours=rng.choice((1, 4, 8)))


def _jitter(rng: random.Random) -> timedelta:
    return rng.choice((timedelta(0), timedelta(milliseconds=rng.randint(-30_000, 30_000))))


def _held(trade: Trade) -> Decimal:
    opening = "buy" if trade.side == "long" else "sell"
    return sum((f.quantity if f.side == opening else -f.quantity for f in trade.fills), Decimal(0))


# --- the reference -----------------------------------------------------------------------------


def half_up(value: Fraction, places: int = 8) -> Decimal:
    """Half up (away from zero at a tie) to ``places``, exactly."""
    scaled = abs(value) * 10**places
    whole = int(scaled)
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    return Decimal(whole if value >= 0 else -whole).scaleb(-places)


def expected(made: History) -> dict[str, dict[str, dict[str, object]]]:
    """The rows the history must make: trades, positions and orders by their ids, funding by
    (symbol, side, funding hour)."""
    trades, positions, funding = {}, {}, {}
    for trade in made.trades.values():
        trades[trade.trade_id], positions[trade.trade_id] = _replay(trade)
        for payment in trade.funding:
            hour = payment.funding_time.replace(minute=0, second=0, microsecond=0)
            if payment.funding_time.minute >= 30:
                hour += timedelta(hours=1)
            key = f"{payment.symbol} {payment.position_side} {hour.isoformat()}"
            funding[key] = {"amount": payment.amount, "trade_id": trade.trade_id}
    orders = {}
    fills_of: dict[str, list[Fill]] = {}
    for fill in made.fills:
        fills_of.setdefault(fill.client_order_id, []).append(fill)
    for order in made.orders:
        mine = fills_of[order.client_order_id]
        filled = sum((Fraction(f.quantity) for f in mine), Fraction(0))
        value = sum((Fraction(f.price) * Fraction(f.quantity) for f in mine), Fraction(0))
        orders[order.client_order_id] = {
            "filled_quantity": half_up(filled),
            "average_fill_price": half_up(value / filled),
            "status": "filled" if filled == Fraction(order.quantity) else "partially_filled",
        }
    return {"trades": trades, "positions": positions, "orders": orders, "funding": funding}


def _replay(trade: Trade) -> tuple[dict[str, object], dict[str, object]]:
    increase = "buy" if trade.side == "long" else "sell"
    sign = 1 if trade.side == "long" else -1
    held = cost = realised = opened = opened_cost = closed = closed_value = Fraction(0)
    for fill in trade.fills:
        price, quantity = Fraction(fill.price), Fraction(fill.quantity)
        if fill.side == increase:  # the entry moves to the volume-weighted price
            cost += price * quantity
            held += quantity
            opened += quantity
            opened_cost += price * quantity
        else:  # the entry is unchanged; PnL on the reduced quantity
            entry = cost / held
            realised += sign * (price - entry) * quantity
            cost -= entry * quantity
            held -= quantity
            closed += quantity
            closed_value += price * quantity
    fees = sum((Fraction(f.fee_quote if f.fee_quote is not None else f.fee) for f in trade.fills),
               Fraction(0))  # fmt: skip
    paid = sum((Fraction(p.amount) for p in trade.funding), Fraction(0))
    pnl = realised - fees + paid
    is_open = held > 0
    action = "open" if is_open else ("liquidated" if trade.liquidated else "close")
    row = {
        "action": action,
        "entry_price": half_up(opened_cost / opened),
        "quantity": half_up(opened),
        "exit_price": half_up(closed_value / closed) if closed else None,
        "fee": half_up(fees),
        "funding": half_up(paid),
        "realized_pnl": half_up(pnl),
        "realized_pnl_pct": half_up(pnl / opened_cost * 100, 4),
        "entry_time": next(f.filled_at for f in trade.fills if f.side == increase),
        "exit_time": None if is_open else trade.fills[-1].filled_at,
    }
    position = {
        "status": "open" if is_open else ("liquidated" if trade.liquidated else "closed"),
        "quantity": half_up(held if is_open else opened),
        "entry_price": half_up(cost / held) if is_open else row["entry_price"],
        "margin": half_up(cost if is_open else opened_cost),
    }
    return row, position
