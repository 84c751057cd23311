"""Recording a whole history in bulk: the ledger of one event at a time, at full size, in any
order, with replays; a bad record names its list and row and nothing is written."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import FrozenInstanceError, replace
from decimal import Decimal
from pathlib import Path

import pytest

from iftb.data.storage import (
    ConflictError,
    DatabaseManager,
    Fill,
    FundingPayment,
    HistoryCounts,
    Order,
    ValidationError,
)
from tests.ledger_stream import Stream, generate
from tests.support.racers import race
from tests.test_ledger import SMALL, _empty_ledger, _fill, _order, ledger_rows, record

FULL = {"symbols": 20, "trades_per_series": 34}
"""At least 10,000 fills over 20 symbols, longs and shorts."""


async def record_history(
    db: DatabaseManager, stream: Stream, *, shuffled: bool = False, batches: int = 1
) -> HistoryCounts:
    """Record the stream with ``record_history``: whole, or shuffled with replays and cut into
    ``batches`` calls (so fills come before their orders, funding before its trade)."""
    events: list[object] = [*stream.orders, *stream.fills, *stream.funding]
    if shuffled:
        rng = random.Random(5)
        events += rng.sample(events, len(events) // 5)
        rng.shuffle(events)
    size = -(-len(events) // batches)
    total = HistoryCounts(0, 0, 0, 0)
    for start in range(0, len(events), size):
        chunk = [replace(event) for event in events[start : start + size]]  # type: ignore[type-var]
        async with db.scope("ledger", "live").session() as journal:
            counts = await journal.ledger.record_history(
                [e for e in chunk if isinstance(e, Order)],
                [e for e in chunk if isinstance(e, Fill)],
                [e for e in chunk if isinstance(e, FundingPayment)],
            )
        total = HistoryCounts(
            *(a + b for a, b in zip(vars_of(total), vars_of(counts), strict=True))
        )
    return total


def vars_of(counts: HistoryCounts) -> tuple[int, int, int, int]:
    return (counts.orders, counts.fills, counts.funding, counts.trades)


async def test_a_history_in_bulk_is_the_ledger_of_one_event_at_a_time(
    db: DatabaseManager,
) -> None:
    stream = generate(**SMALL, seed=31)
    await record(db, stream, shuffled=False)
    one_at_a_time = await ledger_rows(db)
    await _empty_ledger(db)
    counts = await record_history(db, stream)
    assert vars_of(counts) == (
        len(stream.orders), len(stream.fills), len(stream.funding), len(stream.trades)
    )  # fmt: skip
    assert await ledger_rows(db) == one_at_a_time


@pytest.mark.soak
async def test_ten_thousand_fills_one_at_a_time_shuffled_make_the_bulk_ledger(
    db: DatabaseManager,
) -> None:
    """The same full-size stream through the one-at-a-time path (minutes: run with --soak)."""
    stream = generate(**FULL, seed=32)
    await record_history(db, stream)
    in_bulk = await ledger_rows(db)
    await _empty_ledger(db)
    await record(db, stream, shuffled=True)
    assert await ledger_rows(db) == in_bulk


async def test_a_history_recorded_again_writes_nothing(db: DatabaseManager) -> None:
    stream = generate(**SMALL, seed=33)
    await record_history(db, stream)
    before = await ledger_rows(db)
    assert vars_of(await record_history(db, stream, shuffled=True)) == (0, 0, 0, 0)
    assert await ledger_rows(db) == before


async def test_a_history_completes_what_was_recorded_one_at_a_time(db: DatabaseManager) -> None:
    stream = generate(**SMALL, seed=34)
    await record_history(db, stream)
    whole = await ledger_rows(db)
    await _empty_ledger(db)
    half = Stream(
        orders=stream.orders[1::2], fills=stream.fills[::2], funding=stream.funding[::2]
    )  # fills of orders not recorded yet wait; trades are half built
    await record(db, half, shuffled=True)
    await record_history(db, stream, shuffled=True, batches=3)
    assert await ledger_rows(db) == whole


@pytest.mark.parametrize(
    ("fills", "rule"),
    [
        (lambda: [_fill(1), _fill(2, "1.5")], "fills row 1: quantity: fill 'f2' of 1.5 exceeds"),
        (lambda: [_fill(1, side="sell")], "fills row 0: side: fill 'f1' is a BTCUSDT sell"),
        (lambda: [_fill(1, bot="other")], "fills row 0: bot: the record belongs to scope"),
    ],
)
async def test_one_bad_record_rejects_the_history_naming_it(
    db: DatabaseManager, fills: Callable[[], list[Fill]], rule: str
) -> None:
    before = await ledger_rows(db)
    async with db.scope("b").session() as journal:
        with pytest.raises(ValidationError, match=rule) as refused:
            await journal.ledger.record_history([_order()], fills())
    assert refused.value.field is not None
    assert await ledger_rows(db) == before


def test_a_ledger_record_cannot_change_after_it_was_checked() -> None:
    """Records are checked once, when built: the batch trusts them, so none can change."""
    fill = _fill(1)
    with pytest.raises(FrozenInstanceError):
        fill.quantity = Decimal(-1)  # type: ignore[misc]
    with pytest.raises(ValidationError, match="quantity: must be > 0"):
        replace(fill, quantity=Decimal(-1))
    with pytest.raises(ValidationError, match="fee_quote: the fee is in BNB"):
        replace(fill, fee=Decimal("0.1"), fee_asset="BNB")


async def test_an_order_document_changed_after_building_rejects_the_history(
    db: DatabaseManager,
) -> None:
    """An order's JSON document is the one part whose insides can change: checked again."""
    order = _order(raw={"exchange": {"price": 1.5}})
    order.raw["exchange"]["price"] = float("nan")
    before = await ledger_rows(db)
    async with db.scope("b").session() as journal:
        with pytest.raises(ValidationError, match="orders row 1: raw: .* not a finite number"):
            await journal.ledger.record_history([_order(client_order_id="o0"), order])
    assert await ledger_rows(db) == before


async def test_conflicting_orders_and_trades_are_refused(db: DatabaseManager) -> None:
    async with db.scope("b").session() as journal:
        await journal.ledger.record_history([_order()])
    before = await ledger_rows(db)
    async with db.scope("b").session() as journal:
        with pytest.raises(ConflictError, match="order 'o1' on binance is already recorded with "
                           "other terms: quantity 3 \\(stored 2"):  # fmt: skip
            await journal.ledger.record_history([_order(quantity=Decimal(3))])
        mixed = "orders row 1: trade_id: order 'e1' is a binance ETHUSDT long order, but trade"
        with pytest.raises(ValidationError, match=f"{mixed} 't1' is a binance BTCUSDT long"):
            await journal.ledger.record_history(
                [_order(), _order(client_order_id="e1", symbol="ETHUSDT")]
            )
        with pytest.raises(ValidationError, match="trade_id: order 'e2'"):
            await journal.ledger.record_order(_order(client_order_id="e2", symbol="ETHUSDT"))
    assert await ledger_rows(db) == before


RACER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from tests.ledger_stream import generate
from tests.test_ledger_history import record_history
from iftb.data.storage import DatabaseManager

async def main(url):
    async with DatabaseManager(url) as db:
        await record_history(db, generate(symbols=6, trades_per_series=4, seed=35),
                             shuffled=True, batches=4)

asyncio.run(main(sys.argv[1]))
"""


async def test_two_processes_recording_the_same_history_make_the_ledger_of_one(
    db: DatabaseManager, database_url: str, tmp_path: Path
) -> None:
    await record_history(db, generate(symbols=6, trades_per_series=4, seed=35))
    alone = await ledger_rows(db)
    await _empty_ledger(db)
    await race(tmp_path, RACER, [database_url], [database_url])
    assert await ledger_rows(db) == alone
