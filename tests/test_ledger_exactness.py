"""Six ways the ledger once lost or misstated money without a word, each pinned on both backends:
arrival order, replays with other terms, funding stamped several ways, rounding, fills of one
millisecond, and fee fields that contradict each other. Expected values are worked out by hand
from the exchange's rules in each docstring."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from iftb.data.storage import (
    ConflictError,
    DatabaseManager,
    Fill,
    FundingPayment,
    Order,
    ValidationError,
)
from tests.test_ledger import T0, _fill, _order, ledger_rows
from tests.test_ledger_replay import record_runs

Event = Order | Fill | FundingPayment


def _minutes(number: int) -> Any:
    return T0 + timedelta(minutes=number)


def _trade_through_zero() -> list[Event]:
    """Buy 1 @ 100 and 2 @ 110, sell 1 @ 120, then 2 @ 130 (placed after the first sell
    filled). Entry (100 + 220) / 3; realised (120 − 106.67) × 1 + (130 − 106.67) × 2 = 60."""
    return [
        _order(client_order_id="o0", quantity=Decimal(1)),
        _order(client_order_id="o1", placed_at=_minutes(1)),
        _order(client_order_id="c0", side="sell", quantity=Decimal(1), placed_at=_minutes(2)),
        _order(client_order_id="c1", side="sell", placed_at=_minutes(4)),
        _fill(1, client_order_id="o0"),
        _fill(2, "2", client_order_id="o1", price=Decimal(110)),
        _fill(3, client_order_id="c0", side="sell", price=Decimal(120)),
        _fill(5, "2", client_order_id="c1", side="sell", price=Decimal(130)),
    ]


async def _record(db: DatabaseManager, bot: str, events: list[Event], *, bulk: bool) -> None:
    """``events`` in one unit of work: in bulk, or one at a time."""
    await record_runs(db, bot, [(events, bulk)])


async def test_fills_that_net_to_zero_before_the_rest_arrive_close_nothing(
    db: DatabaseManager,
) -> None:
    """The first buy and the first sell arrive first and net to zero; the later sell, whose
    order was placed after that, arrives next, then the second buy. One at a time, and in bulk
    cut at the same point, it is the trade of the events in order."""
    events = _trade_through_zero()
    o0, o1, c0, c1, f1, f2, f3, f5 = events
    arrival = [o0, c0, f1, f3, c1, f5, o1, f2]
    await _record(db, "in-order", events, bulk=False)
    await _record(db, "live", arrival, bulk=False)
    await _record(db, "bulk", arrival[:6], bulk=True)
    await _record(db, "bulk", arrival[6:], bulk=True)
    for bot in ("in-order", "live", "bulk"):
        async with db.scope(bot).session(read_only=True) as journal:
            trade = await journal.trades.get_by_trade_id("t1")
        assert trade is not None, bot
        assert (trade.action, trade.quantity, trade.realized_pnl) == (
            "close", Decimal(3), Decimal(60)
        ), bot  # fmt: skip
        assert trade.entry_price == Decimal("106.66666667")


FILL_TERMS = [
    ("quantity", Decimal("0.5")),
    ("price", Decimal(101)),
    ("fee", Decimal("0.2")),
    ("fee_asset", "BNB"),
    ("filled_at", _minutes(9)),
    ("side", "sell"),
    ("client_order_id", "o9"),
]


@pytest.mark.parametrize(("term", "value"), FILL_TERMS)
async def test_a_fill_replayed_with_other_terms_is_a_conflict_naming_them(
    db: DatabaseManager, term: str, value: object
) -> None:
    first = _fill(1, fee=Decimal("0.1"))
    other = replace(
        first, **{term: value} | ({"fee_quote": Decimal("0.1")} if term == "fee_asset" else {})
    )
    async with db.scope("b").session() as journal:
        await journal.ledger.record_order(_order())
        await journal.ledger.record_fill(first)
    before = await ledger_rows(db)
    for attempt in ("one", "history", "batch"):
        fill_id = "f7" if attempt == "batch" else "f1"
        named = f"fill '{fill_id}' of binance BTCUSDT is already recorded with other terms: {term} "
        async with db.scope("b").session() as journal:
            with pytest.raises(ConflictError, match=named):
                if attempt == "one":
                    await journal.ledger.record_fill(other)
                elif attempt == "history":
                    await journal.ledger.record_history(fills=[other])
                else:  # two different fills under one id in one batch: the batch is refused
                    twins = [replace(fill, exchange_fill_id="f7") for fill in (first, other)]
                    await journal.ledger.record_history(fills=twins)
    async with db.scope("b").session() as journal:
        assert await journal.ledger.record_fill(replace(first)) is not None  # identical: no-op
    assert await ledger_rows(db) == before


async def test_one_funding_payment_stamped_three_ways_is_stored_once(db: DatabaseManager) -> None:
    """−3.05 reported at 16:00:00, 16:00:00.001 and 16:00:01 is one payment of the 16:00
    interval: the trade's funding is −3.05, not −9.15. Another amount for it is a conflict; a
    stamp 61 s from any whole hour settles no interval."""
    boundary = T0 + timedelta(hours=16)
    stamps = [boundary, boundary + timedelta(milliseconds=1), boundary + timedelta(seconds=1)]
    payments = [
        FundingPayment(symbol="BTCUSDT", position_side="long", funding_time=stamp,
                       amount=Decimal("-3.05"))
        for stamp in stamps
    ]  # fmt: skip
    async with db.scope("b").session() as journal:
        await journal.ledger.record_order(_order())
        await journal.ledger.record_fill(_fill(1, "2"))
        for payment in payments[1:]:
            await journal.ledger.record_funding(payment)
        await journal.ledger.record_history(funding=payments)
        trade = await journal.trades.get_by_trade_id("t1")
        linked = await journal.ledger.funding_of_trade("t1")
    assert trade is not None and trade.funding == Decimal("-3.05")
    assert [(p.funding_time, p.reported_time) for p in linked] == [(boundary, stamps[1])]
    before = await ledger_rows(db)
    async with db.scope("b").session() as journal:
        with pytest.raises(ConflictError, match=r"amount -3\.06 \(stored -3\.05000000\)"):
            await journal.ledger.record_funding(replace(payments[0], amount=Decimal("-3.06")))
        with pytest.raises(ConflictError, match="funding payment of binance BTCUSDT long"):
            await journal.ledger.record_history(
                funding=[replace(payments[2], amount=Decimal("-3.06"))]
            )
    assert await ledger_rows(db) == before
    with pytest.raises(ValidationError, match="funding_time: .* is not within 60 s of a whole"):
        replace(payments[0], funding_time=boundary + timedelta(seconds=61))


async def test_every_value_is_exact_and_rounded_once_half_up(db: DatabaseManager) -> None:
    """Buy 1 @ 1.00000001 and 2 @ 1.00000002: the entry is 3.00000005 / 3, not a decimal.
    Selling 1.5 @ 1.00000002 realises 1.5 × (1.00000002 − 3.00000005 / 3) = 0.000000005
    exactly: 0.00000001 half up (the 60-digit average gave 4.99…e-9, stored as 0). The 1.5 left
    open cost 1.500000025: margin 1.50000003 half up (half even gave 1.50000002). Fills of
    0.5 @ 1.00000002 and 0.5 @ 1.00000003 average 1.000000025: 1.00000003 half up."""
    async with db.scope("b").session() as journal:
        await journal.ledger.record_order(_order(quantity=Decimal(3)))
        await journal.ledger.record_fill(_fill(1, price=Decimal("1.00000001")))
        await journal.ledger.record_fill(_fill(2, "2", price=Decimal("1.00000002")))
        await journal.ledger.record_order(
            _order(client_order_id="c1", side="sell", quantity=Decimal("1.5"))
        )
        await journal.ledger.record_fill(
            _fill(3, "1.5", client_order_id="c1", side="sell", price=Decimal("1.00000002"))
        )
        await journal.ledger.record_order(
            _order(client_order_id="a1", trade_id="t2", quantity=Decimal(1), symbol="ETHUSDT")
        )
        for number, price in ((4, "1.00000002"), (5, "1.00000003")):
            await journal.ledger.record_fill(
                _fill(number, "0.5", client_order_id="a1", symbol="ETHUSDT", price=Decimal(price))
            )
        trade = await journal.trades.get_by_trade_id("t1")
        positions = await journal.positions.get_open_positions()
        order = await journal.ledger.get_order("a1")
    assert trade is not None and trade.realized_pnl == Decimal("0.00000001")
    margins = {p.symbol: p.margin for p in positions}
    assert margins["BTCUSDT"] == Decimal("1.50000003")
    assert order is not None and order.average_fill_price == Decimal("1.00000003")


@pytest.mark.parametrize("bulk", [False, True])
async def test_fills_of_one_millisecond_follow_the_exchange_sequence(
    db: DatabaseManager, bulk: bool
) -> None:
    """Buy 1 @ 100, then in one millisecond fill 9 buys 2 @ 150 and fill 10 sells 1 @ 150:
    entry (100 + 300) / 3 = 133.33333333, realised 150 − 133.33… = 16.66666667 (with "10"
    before "9", 50 and an entry of 150). Unordered ids ("b" before "a") with a sequence follow
    the sequence."""
    instant = _minutes(5)
    for bot, ids, sequences in (("ids", ("8", "9", "10"), (None,) * 3),
                                ("sequenced", ("c", "b", "a"), (7, 8, 9))):  # fmt: skip
        events: list[Event] = [
            _order(quantity=Decimal(3)),
            _order(client_order_id="c1", side="sell", quantity=Decimal(1)),
            _fill(1, exchange_fill_id=ids[0], sequence=sequences[0]),
            _fill(2, "2", exchange_fill_id=ids[1], sequence=sequences[1], price=Decimal(150),
                  filled_at=instant),
            _fill(3, client_order_id="c1", side="sell", exchange_fill_id=ids[2],
                  sequence=sequences[2], price=Decimal(150), filled_at=instant),
        ]  # fmt: skip
        await _record(db, bot, events[::-1] if not bulk else events, bulk=bulk)
        async with db.scope(bot).session(read_only=True) as journal:
            trade = await journal.trades.get_by_trade_id("t1")
            positions = await journal.positions.get_open_positions()
        assert trade is not None and trade.realized_pnl == Decimal("16.66666667"), bot
        assert [(p.quantity, p.entry_price) for p in positions] == [
            (Decimal(2), Decimal("133.33333333"))
        ], bot


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"fee": Decimal(1), "fee_quote": Decimal(999)},
         "fee_quote: 999 contradicts the fee of 1 the quote asset"),
        ({"fee": Decimal(1), "fee_asset": "USDT", "fee_quote": Decimal(2)},
         "fee_quote: 2 contradicts the fee of 1 USDT"),
        ({"fee": Decimal(0), "fee_asset": "BNB", "fee_quote": Decimal(5)},
         "fee_quote: 5 contradicts the fee of 0 BNB"),
        ({"fee": Decimal(1), "fee_asset": ""}, "fee_asset: is empty"),
        ({"fee": Decimal(1), "fee_asset": "  "}, "fee_asset: is empty"),
    ],
)  # fmt: skip
async def test_fee_fields_that_contradict_each_other_are_refused(
    db: DatabaseManager, changes: dict[str, object], rule: str
) -> None:
    with pytest.raises(ValidationError, match=rule):
        _fill(1, **changes)
    assert _fill(1, fee=Decimal(1), fee_quote=Decimal(1)).quote_fee == Decimal(1)  # agrees
    async with db.scope("b").session() as journal:  # a fill built before is checked again
        await journal.ledger.record_order(_order())
        with pytest.raises(ValidationError, match=rule):
            await journal.ledger.record_fill(_unchecked(_fill(1), changes))
    assert (await ledger_rows(db))["fills"] == []


def _unchecked(fill: Fill, changes: dict[str, object]) -> Fill:
    """``fill`` with ``changes`` forced in, as a caller's own subclass or pickle could."""
    for name, value in changes.items():
        object.__setattr__(fill, name, value)
    return fill


async def test_an_earlier_fill_arriving_late_keeps_the_position_open(db: DatabaseManager) -> None:
    """Found by the replay test: the second buy arrives first, then the first. The trade's entry
    moves back to the first buy; its position, the only one of its side, stays open (it was
    compared with its own stored entry, found "later", and closed)."""
    async with db.scope("b").session() as journal:
        await journal.ledger.record_order(_order())
        await journal.ledger.record_fill(_fill(2))
        await journal.ledger.record_fill(_fill(1))
        positions = await journal.positions.get_open_positions()
    assert [(p.quantity, p.entry_time) for p in positions] == [(Decimal(2), _minutes(1))]
