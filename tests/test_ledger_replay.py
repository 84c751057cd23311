"""The ledger equals an exact replay of the exchange's rules, for every arrival order and
batching of the same events (``tests/ledger_replay.py`` draws the history and replays it).

Each drawn example records one history into a scope of its own: the events permuted, cut into
runs, each run recorded either in bulk (``record_history``) or one event at a time as a live
bot does, every run its own unit of work; the rows are then compared field by field, to the
last digit, with the reference.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from iftb.data.storage import DatabaseManager, Fill, FundingPayment, Journal, Order
from iftb.data.storage.ledger_models import FundingPaymentModel, OrderModel
from iftb.data.storage.models import PositionModel, TradeModel
from tests.conftest import on_citus
from tests.ledger_replay import History, expected, history

_bots = itertools.count(1)

TRADE_FIELDS = ("action", "entry_price", "quantity", "exit_price", "fee", "funding",
                "realized_pnl", "realized_pnl_pct", "entry_time", "exit_time")  # fmt: skip
POSITION_FIELDS = ("status", "quantity", "entry_price", "margin")
ORDER_FIELDS = ("filled_quantity", "average_fill_price", "status")


def runs(events: list[Any], cuts: list[int], bulk: list[bool]) -> list[tuple[list[Any], bool]]:
    """``events`` cut at ``cuts``; run ``n`` to be recorded in bulk when ``bulk[n]`` (cycled),
    else one event at a time."""
    bounds = itertools.pairwise([0, *sorted(set(cuts)), len(events)])
    return [
        (events[start:end], bulk[number % len(bulk)]) for number, (start, end) in enumerate(bounds)
    ]


async def record_runs(db: DatabaseManager, bot: str, runs: list[tuple[list[Any], bool]]) -> None:
    """Each run in its own unit of work, in bulk or one event at a time."""
    for events, in_bulk in runs:
        run = [replace(event) for event in events]
        async with db.scope(bot, "live").session() as journal:
            if in_bulk:
                await journal.ledger.record_history(
                    [e for e in run if isinstance(e, Order)],
                    [e for e in run if isinstance(e, Fill)],
                    [e for e in run if isinstance(e, FundingPayment)],
                )
            else:
                for event in run:
                    await record_one(journal, event)


async def record_one(journal: Journal, event: Order | Fill | FundingPayment) -> None:
    if isinstance(event, Order):
        await journal.ledger.record_order(event)
    elif isinstance(event, Fill):
        await journal.ledger.record_fill(event)
    else:
        await journal.ledger.record_funding(event)


async def stored(db: DatabaseManager, bot: str) -> dict[str, dict[str, dict[str, object]]]:
    """The scope's rows in the reference's shape."""

    async def rows(model: Any, key: Any, names: tuple[str, ...]) -> dict[str, dict[str, object]]:
        columns = [getattr(model, name) for name in names]
        statement = select(key, *columns).where(model.bot == bot)
        return {row[0]: dict(zip(names, row[1:], strict=True)) for row in await read(statement)}

    async with db.get_session(read_only=True) as session:
        read = session.execute
        funding = {
            f"{row.symbol} {row.position_side} {row.funding_time.isoformat()}": {
                "amount": row.amount,
                "trade_id": row.trade_id,
            }
            for row in (
                await read(select(FundingPaymentModel).where(FundingPaymentModel.bot == bot))
            ).scalars()
        }
        return {
            "trades": await rows(TradeModel, TradeModel.trade_id, TRADE_FIELDS),
            "positions": await rows(PositionModel, PositionModel.trade_id, POSITION_FIELDS),
            "orders": await rows(OrderModel, OrderModel.client_order_id, ORDER_FIELDS),
            "funding": funding,
        }


def differences(
    got: dict[str, dict[str, dict[str, object]]], wanted: dict[str, dict[str, dict[str, object]]]
) -> dict[str, object]:
    """Each row that differs, as ``table key: {field: (stored, expected)}`` (a missing row as
    None): a readable failure."""
    found: dict[str, object] = {}
    for table, rows in wanted.items():
        for key in rows.keys() | got[table].keys():
            mine, theirs = got[table].get(key), rows.get(key)
            if mine is None or theirs is None:
                found[f"{table} {key}"] = (mine, theirs)
            elif mine != theirs:
                found[f"{table} {key}"] = {
                    name: (mine[name], theirs[name])
                    for name in theirs
                    if mine[name] != theirs[name]
                }
    return found


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[History, list[Any], list[int], list[bool]]:
    """A history, its events in a drawn order with replays, the cuts into runs and how each
    run is recorded."""
    rng = draw(st.randoms(use_true_random=False))
    made = history(rng, symbols=draw(st.integers(1, 2)), trades_per_series=draw(st.integers(1, 3)))
    events = made.events()
    events += draw(st.lists(st.sampled_from(events), max_size=len(events) // 4))  # replays
    order = draw(st.permutations(range(len(events))))
    cuts = draw(st.lists(st.integers(0, len(events)), max_size=5))
    bulk = draw(st.lists(st.booleans(), min_size=1, max_size=6))
    return made, [events[index] for index in order], cuts, bulk


@settings(
    max_examples=5 if on_citus() else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(drawn=arrivals())
async def test_any_arrival_order_and_batching_makes_the_exact_replay(
    db: DatabaseManager, drawn: tuple[History, list[Any], list[int], list[bool]]
) -> None:
    made, events, cuts, bulk = drawn
    bot = f"replay-{next(_bots)}"  # each example its own scope
    await record_runs(db, bot, runs(events, cuts, bulk))
    assert differences(await stored(db, bot), expected(made)) == {}


async def test_a_ten_thousand_fill_history_shuffled_into_batches_is_the_exact_replay(
    db: DatabaseManager,
) -> None:
    """At full size: 10,000+ fills over 10 symbols, shuffled with replays, recorded in 24 bulk
    runs with a short burst one event at a time after every fifth, as a live bot adds its own."""
    rng = random.Random(25)
    made = history(rng, symbols=10, trades_per_series=90)
    assert len(made.fills) >= 10_000
    events = made.events()
    events += rng.sample(events, len(events) // 10)
    rng.shuffle(events)
    step, burst = len(events) // 24, len(events) // 400
    planned: list[tuple[list[Any], bool]] = []
    for number, start in enumerate(range(0, len(events), step)):
        chunk = events[start : start + step]
        live = number % 5 == 4
        planned += [(chunk[:burst], False), (chunk[burst:], True)] if live else [(chunk, True)]
    await record_runs(db, "replay-full", planned)
    assert differences(await stored(db, "replay-full"), expected(made)) == {}
