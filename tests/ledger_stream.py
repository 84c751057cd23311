"""A generated futures fill stream, and the trades it must make, computed independently.

Per symbol and side (hedge mode: longs and shorts at once): trades of one to three opening
orders (scale-ins), one to three closing orders (partial closes), some ended by a liquidation;
every order filled in one to three partial fills; funding every 8 hours while a position is open.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from iftb.data.storage import Fill, FundingPayment, Order

T0 = datetime(2024, 3, 1, tzinfo=UTC)
FUNDING_EVERY = timedelta(hours=8)
CENT = Decimal("0.01")


@dataclass
class Expected:
    """A trade as the stream makes it, by the definitions of docs/trading_journal.md."""

    side: str
    fills: list[Fill] = field(default_factory=list)
    liquidation: set[str] = field(default_factory=set)
    funding: list[FundingPayment] = field(default_factory=list)


@dataclass
class Stream:
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    funding: list[FundingPayment] = field(default_factory=list)
    trades: dict[str, Expected] = field(default_factory=dict)


def generate(symbols: int, trades_per_series: int, seed: int) -> Stream:
    rng = random.Random(seed)
    stream = Stream()
    for number in range(symbols):
        symbol = f"C{number:02d}USDT"
        for side in ("long", "short"):
            clock = T0 + timedelta(minutes=rng.randint(0, 600))
            for sequence in range(trades_per_series):
                clock = _trade(stream, rng, symbol, side, f"{symbol}-{side}-{sequence}", clock)
                clock += timedelta(hours=rng.randint(1, 30))
    return stream


def _trade(
    stream: Stream, rng: random.Random, symbol: str, side: str, trade_id: str, clock: datetime
) -> datetime:
    opening, closing = ("buy", "sell") if side == "long" else ("sell", "buy")
    expected = stream.trades.setdefault(trade_id, Expected(side))
    held = Decimal(0)
    price = Decimal(rng.randint(1_000, 90_000)) / 100
    for leg in range(rng.randint(1, 3)):
        quantity = Decimal(rng.randint(1, 500)) / 100
        clock = _order(stream, rng, expected, trade_id, f"{trade_id}-o{leg}", symbol, opening,
                       side, quantity, price, clock, "limit")  # fmt: skip
        held += quantity
        price += Decimal(rng.randint(-300, 300)) / 100
    liquidated = rng.random() < 0.1
    for leg in range(rng.randint(1, 3)):
        last = leg == 2 or rng.random() < 0.4
        quantity = held if last else (held * Decimal(rng.randint(10, 60)) / 100).quantize(CENT)
        if quantity <= 0 or quantity > held:
            quantity = held
        kind = "liquidation" if last and liquidated else "market"
        clock = _order(stream, rng, expected, trade_id, f"{trade_id}-c{leg}", symbol, closing,
                       side, quantity, price, clock, kind)  # fmt: skip
        held -= quantity
        price += Decimal(rng.randint(-500, 500)) / 100
        if held == 0:
            break
    if held:
        clock = _order(stream, rng, expected, trade_id, f"{trade_id}-cz", symbol, closing,
                       side, held, price, clock, "market")  # fmt: skip
    times = [fill.filled_at for fill in expected.fills]
    _funding(stream, rng, expected, symbol, side, min(times), max(times))
    return clock


def _order(
    stream: Stream, rng: random.Random, expected: Expected, trade_id: str, client_id: str,
    symbol: str, side: str, position_side: str, quantity: Decimal, price: Decimal,
    clock: datetime, kind: str,
) -> datetime:  # fmt: skip
    stream.orders.append(
        Order(
            client_order_id=client_id,
            trade_id=trade_id,
            symbol=symbol,
            side=side,
            position_side=position_side,
            order_type=kind,
            quantity=quantity,
            placed_at=clock,
        )
    )
    parts = rng.randint(1, 3)
    left = quantity
    for part in range(parts):
        size = (
            left
            if part == parts - 1
            else (left * Decimal(rng.randint(20, 70)) / 100).quantize(CENT)
        )
        if size <= 0:
            continue
        clock += timedelta(seconds=rng.randint(1, 900))
        fill = Fill(
            exchange_fill_id=f"{client_id}-f{part}", client_order_id=client_id, symbol=symbol,
            side=side, price=price + Decimal(rng.randint(-50, 50)) / 100, quantity=size,
            fee=(price * size * Decimal("0.0004")).quantize(Decimal("1e-8"), ROUND_HALF_UP),
            filled_at=clock,
        )  # fmt: skip
        stream.fills.append(fill)
        expected.fills.append(fill)
        if kind == "liquidation":
            expected.liquidation.add(fill.exchange_fill_id)
        left -= size
    return clock + timedelta(seconds=1)


def _funding(
    stream: Stream, rng: random.Random, expected: Expected, symbol: str, side: str,
    start: datetime, end: datetime,
) -> None:  # fmt: skip
    """A payment at every 8-hour boundary strictly between the trade's first and last fill
    (a position is open then)."""
    boundary = T0 + FUNDING_EVERY * ((start - T0) // FUNDING_EVERY + 1)
    while boundary < end:
        payment = FundingPayment(
            symbol=symbol, position_side=side, funding_time=boundary,
            amount=Decimal(rng.randint(-50_000, 50_000)) / 10**6,
            rate=Decimal(rng.randint(-100, 100)) / 10**6,
        )  # fmt: skip
        stream.funding.append(payment)
        expected.funding.append(payment)
        boundary += FUNDING_EVERY


def expected_figures(trade: Expected) -> dict[str, object]:
    """The trade's figures, written out plainly in exact fractions (average cost, fees,
    funding), rounded half up to 8 places once at the end."""
    opening = "buy" if trade.side == "long" else "sell"
    sign = 1 if trade.side == "long" else -1
    average = held = realised = opened = cost = closed = value = Fraction(0)
    exit_time = None
    for fill in sorted(trade.fills, key=lambda f: (f.filled_at, f.exchange_fill_id)):
        price, quantity = Fraction(fill.price), Fraction(fill.quantity)
        if fill.side == opening:
            average = (average * held + price * quantity) / (held + quantity)
            held += quantity
            opened += quantity
            cost += price * quantity
        else:
            realised += sign * (price - average) * quantity
            held -= quantity
            closed += quantity
            value += price * quantity
            exit_time = fill.filled_at
    fees = sum((fill.fee for fill in trade.fills), Decimal(0))
    funding = sum((p.amount for p in trade.funding), Decimal(0))
    return {
        "action": ("liquidated" if trade.liquidation else "close") if held == 0 else "open",
        "entry_price": _round(cost / opened),
        "quantity": Decimal(opened.numerator) / Decimal(opened.denominator),
        "exit_price": _round(value / closed),
        "fee": fees,
        "funding": funding,
        "realized_pnl": _round(realised - Fraction(fees) + Fraction(funding)),
        "exit_time": exit_time,
    }


def _round(value: Fraction) -> Decimal:
    """Half up (away from zero at a tie) to 8 places, exactly."""
    scaled = abs(value) * 10**8
    whole = int(scaled)
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    return Decimal(whole if value >= 0 else -whole).scaleb(-8)
