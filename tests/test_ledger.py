"""The futures ledger: a generated fill stream, applied in order and again shuffled with
duplicates, makes the same ledger, and every trade equals an independent computation."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from iftb.data.storage import (
    ConflictError,
    DatabaseManager,
    ExchangePosition,
    Fill,
    FundingPayment,
    Journal,
    Order,
    Trade,
    ValidationError,
)
from tests.ledger_stream import T0, Stream, expected_figures, generate
from tests.support.racers import race

SMALL = {"symbols": 4, "trades_per_series": 3}


async def record(
    db: DatabaseManager, stream: Stream, *, shuffled: bool, seed: int = 7, live: bool = False
) -> None:
    """Record the stream in one unit of work, or (``live``) each event in its own, retried
    when it loses a race, as a live bot does: ledger calls are safe to repeat."""
    events: list[object] = [*stream.orders, *stream.fills, *stream.funding]
    if shuffled:
        rng = random.Random(seed)
        events += rng.sample(events, len(events) // 5)  # replays
        rng.shuffle(events)
    handle = db.scope("ledger", "live")
    if not live:
        async with handle.session() as journal:
            for event in events:
                await _record_one(journal, event)
        return
    for event in events:
        await handle.run_idempotent(lambda journal, event=event: _record_one(journal, event))


async def _record_one(journal: Journal, event: object) -> None:
    if isinstance(event, Order):
        await journal.ledger.record_order(replace(event))
    elif isinstance(event, Fill):
        await journal.ledger.record_fill(replace(event))
    else:
        assert isinstance(event, FundingPayment)
        await journal.ledger.record_funding(replace(event))


async def ledger_rows(db: DatabaseManager) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "trades": "SELECT trade_id, action, entry_price, quantity, exit_price, fee, funding, "
        "realized_pnl, entry_time, exit_time FROM trades ORDER BY trade_id",
        "orders": "SELECT client_order_id, filled_quantity, average_fill_price, status "
        "FROM orders ORDER BY client_order_id",
        "fills": "SELECT exchange_fill_id, quantity, price FROM fills ORDER BY exchange_fill_id",
        "funding": "SELECT symbol, position_side, funding_time, amount, trade_id "
        "FROM funding_payments ORDER BY symbol, position_side, funding_time",
        "positions": "SELECT trade_id, status FROM positions ORDER BY trade_id",
    }
    async with db.get_session(read_only=True) as session:
        return {
            name: [tuple(row) for row in await session.execute(text(sql))]
            for name, sql in queries.items()
        }


async def test_a_stream_applied_in_order_makes_the_independently_computed_trades(
    db: DatabaseManager,
) -> None:
    stream = generate(**SMALL, seed=11)
    await record(db, stream, shuffled=False)
    async with db.scope("ledger", "live").session(read_only=True) as journal:
        for trade_id, expected in stream.trades.items():
            trade = await journal.trades.get_by_trade_id(trade_id)
            assert trade is not None
            wanted = expected_figures(expected)
            stored = {name: getattr(trade, name) for name in wanted}
            assert stored == wanted, trade_id


async def test_shuffled_with_replays_the_ledger_is_identical(
    db: DatabaseManager, database_url: str
) -> None:
    stream = generate(**SMALL, seed=12)
    await record(db, stream, shuffled=False)
    in_order = await ledger_rows(db)
    await _empty_ledger(db)
    await record(db, stream, shuffled=True)
    assert await ledger_rows(db) == in_order


async def _empty_ledger(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        for table in ("fills", "orders", "funding_payments", "positions", "trades"):
            await session.execute(text(f"DELETE FROM {table}"))


def _order(**changes: object) -> Order:
    values: dict[str, object] = {
        "client_order_id": "o1", "trade_id": "t1", "symbol": "BTCUSDT", "side": "buy",
        "position_side": "long", "order_type": "limit", "quantity": Decimal(2),
        "price": Decimal(100), "placed_at": T0,
    }  # fmt: skip
    return Order(**(values | changes))  # type: ignore[arg-type]


def _fill(number: int, quantity: str = "1", **changes: object) -> Fill:
    values: dict[str, object] = {
        "exchange_fill_id": f"f{number}", "client_order_id": "o1", "symbol": "BTCUSDT",
        "side": "buy", "price": Decimal(100), "quantity": Decimal(quantity),
        "filled_at": T0 + timedelta(minutes=number),
    }  # fmt: skip
    return Fill(**(values | changes))  # type: ignore[arg-type]


async def test_a_fill_twice_counts_once_and_a_fill_may_come_before_its_order(
    db: DatabaseManager,
) -> None:
    async with db.scope("b").session() as journal:
        early = await journal.ledger.record_fill(_fill(1))
        assert early.order_id is None  # stored, waiting for its order
        order = await journal.ledger.record_order(_order())
        assert (order.filled_quantity, order.status) == (Decimal(1), "partially_filled")
        again = await journal.ledger.record_fill(_fill(1))
        assert again.id == early.id
        order = await journal.ledger.record_order(_order())  # replayed order: the stored one
        assert order.filled_quantity == Decimal(1)
        await journal.ledger.record_fill(_fill(2))
        filled = await journal.ledger.get_order("o1")
        trade = await journal.trades.get_by_trade_id("t1")
    assert filled is not None and (filled.filled_quantity, filled.status) == (2, "filled")
    assert trade is not None and (trade.quantity, trade.action) == (Decimal(2), "open")


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        (lambda: _fill(3, "1.5"), "quantity: fill 'f3' of 1.5 exceeds the 1 remaining"),
        (lambda: _fill(3, "-1"), "quantity: must be > 0"),
        (lambda: _fill(3, fee=Decimal("0.1"), fee_asset="BNB"), "fee_quote: the fee is in BNB"),
        (lambda: _fill(3, side="sell"), "side: fill 'f3' is a BTCUSDT sell"),
    ],
)
async def test_a_bad_fill_is_refused_and_changes_nothing(
    db: DatabaseManager, bad: object, rule: str
) -> None:
    async with db.scope("b").session() as journal:
        await journal.ledger.record_order(_order())
        await journal.ledger.record_fill(_fill(1))
    before = await ledger_rows(db)
    async with db.scope("b").session() as journal:
        with pytest.raises(ValidationError, match=rule):
            await journal.ledger.record_fill(bad())  # type: ignore[operator]
    assert await ledger_rows(db) == before


async def test_only_legal_status_transitions(db: DatabaseManager) -> None:
    async with db.scope("b").session() as journal:
        await journal.ledger.record_order(_order())
        await journal.ledger.update_order("binance", "o1", status="cancelled")
        with pytest.raises(ConflictError, match="cannot go from cancelled to new"):
            await journal.ledger.update_order("binance", "o1", status="new")
        with pytest.raises(ValidationError, match="status: 'open' is not one of"):
            await journal.ledger.update_order("binance", "o1", status="open")


async def test_reconciliation_reports_every_difference_and_can_log_them(
    db: DatabaseManager,
) -> None:
    async with db.scope("b").session() as journal:
        await journal.ledger.record_order(_order())
        await journal.ledger.record_fill(_fill(1))  # long BTCUSDT 1 @ 100
        eth = _order(client_order_id="e1", trade_id="t2", symbol="ETHUSDT", quantity=Decimal(3))
        await journal.ledger.record_order(eth)
        await journal.ledger.record_fill(_fill(2, "3", client_order_id="e1", symbol="ETHUSDT"))
        reported = [
            ExchangePosition("BTCUSDT", "long", Decimal(1), Decimal(100)),  # agrees
            ExchangePosition("ETHUSDT", "long", Decimal(2), Decimal(100)),  # smaller
            ExchangePosition("SOLUSDT", "short", Decimal(5), Decimal(20)),  # unknown to us
        ]
        found = await journal.ledger.reconcile(reported, record_events=True)
        events = await journal.events.get_recent_events(event_type="reconciliation")
    assert [(d.symbol, d.side, d.problem) for d in found] == [
        ("ETHUSDT", "long", "sizes differ"),
        ("SOLUSDT", "short", "open on the exchange, not in the ledger"),
    ]
    assert sorted(e.message for e in events) == [
        "ETHUSDT long: sizes differ",
        "SOLUSDT short: open on the exchange, not in the ledger",
    ]


async def test_funding_totals_per_symbol_and_day(db: DatabaseManager) -> None:
    async with db.scope("b").session() as journal:
        for hours, symbol, amount in ((0, "BTCUSDT", "-1.5"), (8, "BTCUSDT", "0.25"),
                                      (16, "ETHUSDT", "2"), (24, "BTCUSDT", "1")):  # fmt: skip
            await journal.ledger.record_funding(
                FundingPayment(symbol=symbol, position_side="long",
                               funding_time=T0 + timedelta(hours=hours), amount=Decimal(amount))
            )  # fmt: skip
        totals = await journal.ledger.funding_totals(T0, T0 + timedelta(days=2))
    assert [(t.day.day, t.symbol, t.amount, t.payments) for t in totals] == [
        (1, "BTCUSDT", Decimal("-1.25"), 2),
        (1, "ETHUSDT", Decimal(2), 1),
        (2, "BTCUSDT", Decimal(1), 1),
    ]


RACER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from tests.ledger_stream import generate
from tests.test_ledger import record
from iftb.data.storage import DatabaseManager

async def main(url, seed):
    async with DatabaseManager(url) as db:
        await record(db, generate(symbols=3, trades_per_series=2, seed=21), shuffled=True,
                     seed=int(seed), live=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_processes_recording_the_same_stream_make_the_ledger_of_one(
    db: DatabaseManager, database_url: str, tmp_path: Path
) -> None:
    stream = generate(symbols=3, trades_per_series=2, seed=21)
    await record(db, stream, shuffled=False)
    alone = await ledger_rows(db)
    await _empty_ledger(db)
    await race(tmp_path, RACER, [database_url, "1"], [database_url, "2"])
    assert await ledger_rows(db) == alone


async def test_an_order_is_refused_when_a_fill_waiting_for_it_does_not_match(
    db: DatabaseManager,
) -> None:
    async with db.scope("b").session() as journal:
        await journal.ledger.record_fill(_fill(1, symbol="ETHUSDT", side="sell"))
    before = await ledger_rows(db)
    async with db.scope("b").session() as journal:
        with pytest.raises(ValidationError, match="side: fill 'f1' is a ETHUSDT sell"):
            await journal.ledger.record_order(_order())
    assert await ledger_rows(db) == before


async def test_funding_while_a_trade_kept_without_fills_is_open_is_stored_unlinked(
    db: DatabaseManager,
) -> None:
    """A trade journaled by hand (no orders) is the user's to close: funding recorded while it
    is open is stored, linked to no trade, and the trade row is left as it was."""
    async with db.scope("b").session() as journal:
        await journal.trades.insert(
            Trade(trade_id="manual", symbol="BTCUSDT", exchange="binance", side="long",
                  action="open", entry_price=Decimal(100), quantity=Decimal(1), entry_time=T0)
        )  # fmt: skip
        payment = await journal.ledger.record_funding(
            FundingPayment(symbol="BTCUSDT", position_side="long",
                           funding_time=T0 + timedelta(hours=8), amount=Decimal("-0.5"))
        )  # fmt: skip
        trade = await journal.trades.get_by_trade_id("manual")
    assert payment.trade_id is None
    assert trade is not None and (trade.funding, trade.action) == (Decimal(0), "open")
