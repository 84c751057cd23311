"""The scope registry (migration 0012): every journal table registers its scopes, listing reads
the registry yet answers what a scan of the journal answers, and a scope's trades revision moves
with every write of its trades, by the library or around it, and with nothing else.

Runs on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from iftb.data.storage import (
    BacktestRunRepository,
    DailyPerformance,
    DatabaseManager,
    LLMAnalysisLog,
    Scope,
    ScopeRepository,
    TradeRepository,
    ValidationError,
)
from iftb.data.storage.scoped_database import Journal
from tests.factories import T0, make_position, make_trade

WRITERS = 6
# One write per journal table, each in a scope of its own.
WRITES: dict[str, Callable[[Journal], Awaitable[Any]]] = {
    "trades": lambda journal: journal.trades.insert(make_trade(trade_id="t")),
    "positions": lambda journal: journal.positions.update_position(make_position()),
    "daily_performance": lambda journal: journal.daily_performance.upsert(
        DailyPerformance(date(2024, 1, 1), "binance")
    ),
    "system_events": lambda journal: journal.events.log_event("probe", "info", "registered"),
    "llm_analysis_log": lambda journal: journal.llm_calls.log(LLMAnalysisLog("signal")),
    "bot_state": lambda journal: journal.state.set("key", 1),
    "pair_locks": lambda journal: journal.locks.lock(
        "BTCUSDT", datetime.now(UTC) + timedelta(hours=1)
    ),
}
# The listing as the journal's rows themselves answer it: what list_scopes computed before the
# registry, kept here as the independent answer.
SCANNED = " UNION ".join(f"SELECT bot, mode, run_id FROM {table}" for table in WRITES)
COUNTED = f"""
SELECT s.bot, s.mode, s.run_id,
       (SELECT count(*) FROM trades t WHERE t.bot = s.bot AND t.mode = s.mode
            AND (t.run_id = s.run_id OR (t.run_id IS NULL AND s.run_id IS NULL))) AS trades,
       (SELECT count(*) FROM positions p WHERE p.bot = s.bot AND p.mode = s.mode
            AND (p.run_id = s.run_id OR (p.run_id IS NULL AND s.run_id IS NULL))
            AND p.status = 'open') AS open_positions
FROM ({SCANNED}) s"""


async def scanned(db: DatabaseManager) -> set[tuple[Scope, int, int]]:
    async with db.get_session(read_only=True) as session:
        rows = (await session.execute(text(COUNTED))).all()
    return {(Scope(row.bot, row.mode, row.run_id), row.trades, row.open_positions) for row in rows}


async def listed(db: DatabaseManager) -> set[tuple[Scope, int, int]]:
    async with db.get_session(read_only=True) as session:
        summaries = await ScopeRepository(session).list_scopes()
    return {(s.scope, s.trades, s.open_positions) for s in summaries}


async def revision(db: DatabaseManager, scope: Scope) -> int:
    async with db.get_session(read_only=True) as session:
        return await ScopeRepository(session).trades_revision(scope)


async def test_every_journal_table_registers_its_scope_and_listing_equals_a_scan(
    db: DatabaseManager,
) -> None:
    for table, write in WRITES.items():
        async with db.scope(f"bot-{table}", "paper").session() as journal:
            await write(journal)
    async with db.get_session() as session:
        run = await BacktestRunRepository(session).start(
            "bot-trades", "ema", timeframe="1h", data_start=T0, data_end=T0
        )
    async with db.scope("bot-trades", "backtest", run.id).session() as journal:
        await journal.events.log_event("probe", "info", "a run's only row is an event")

    expected = await scanned(db)
    assert {scope.bot for scope, _, _ in expected} == {f"bot-{table}" for table in WRITES}
    assert await listed(db) == expected
    assert (Scope("bot-trades", "paper"), 1, 0) in expected

    async with db.get_session() as session:  # a run deleted with its rows is no scope any more
        await BacktestRunRepository(session).delete(run.id)
    assert run.scope not in {scope for scope, _, _ in await listed(db)}
    assert await listed(db) == await scanned(db)


async def test_the_migration_registers_the_scopes_already_in_the_journal(
    db: DatabaseManager,
) -> None:
    for table, write in WRITES.items():
        async with db.scope(f"bot-{table}", "live").session() as journal:
            await write(journal)
    await db.migrate("0011")
    await db.migrate()
    assert await listed(db) == await scanned(db)
    assert await revision(db, Scope("bot-trades", "live")) == 1
    assert await revision(db, Scope("bot-positions", "live")) == 0


async def test_every_write_of_a_scopes_trades_moves_its_revision_and_nothing_else_does(
    db: DatabaseManager,
) -> None:
    scope, other = Scope("trend-1", "live"), Scope("trend-1", "paper")
    seen = [await revision(db, scope)]
    assert seen == [0]

    async def moved() -> None:
        seen.append(await revision(db, scope))
        assert seen[-1] > seen[-2], seen

    async def unmoved() -> None:
        assert await revision(db, scope) == seen[-1]

    handle = db.scope(scope.bot, scope.mode)
    async with handle.session() as journal:
        await journal.trades.insert(make_trade(trade_id="a", entry_time=T0))
    await moved()
    async with handle.session() as journal:
        await journal.trades.close_trade("a", Decimal("41000"), T0 + timedelta(hours=1))
    await moved()

    async with db.get_session() as session:  # around the library: the triggers see it too
        await session.execute(text("UPDATE trades SET fee = 2 WHERE trade_id = 'a'"))
    await moved()
    async with db.get_session() as session:
        await session.execute(text("DELETE FROM trades WHERE trade_id = 'a'"))
    await moved()

    with pytest.raises(RuntimeError):  # a write rolled back leaves the revision
        async with handle.session() as journal:
            await journal.trades.insert(make_trade(trade_id="b"))
            raise RuntimeError("the unit of work fails")
    await unmoved()
    async with db.scope(other.bot, other.mode).session() as journal:
        await journal.trades.insert(make_trade(trade_id="a"))
    async with handle.session() as journal:
        await journal.events.log_event("probe", "info", "not a trade")
        await journal.positions.update_position(make_position())
        await journal.trades.get_statistics()
    await unmoved()

    async with db.get_session() as session:  # a backtest's bulk write moves the run's revision
        runs = BacktestRunRepository(session)
        run = await runs.start("trend-1", "ema", timeframe="1h", data_start=T0, data_end=T0)
        await runs.record_trades(run.id, [make_trade(trade_id=f"r{n}") for n in range(20)])
    assert await revision(db, run.scope) >= 1
    await unmoved()


async def test_writers_racing_into_a_new_scope_all_land_and_each_moves_the_revision_once(
    db: DatabaseManager,
) -> None:
    scope = Scope("racers", "paper")
    start = asyncio.Barrier(WRITERS)

    async def writer(number: int) -> None:
        async with db.scope(scope.bot, scope.mode).session() as journal:
            await start.wait()  # every unit of work open before any writes
            await journal.trades.insert(make_trade(trade_id=f"racer-{number}"))

    await asyncio.gather(*(writer(number) for number in range(WRITERS)))
    assert await revision(db, scope) == WRITERS
    assert (scope, WRITERS, 0) in await listed(db)


@pytest.mark.postgres_only
async def test_writers_of_one_scope_meeting_in_a_cycle_are_broken_up_and_both_land(
    db: DatabaseManager,
) -> None:
    """The one cycle the registry can close (docs/scopes.md): a unit holds the scope's registry
    row (it wrote a trade) and waits for a lock the other unit holds, which waits to write a
    trade. PostgreSQL fails one as a deadlock; ``run_idempotent`` runs it again; both land."""
    scope, other_lock = Scope("cycle", "live"), "SELECT pg_advisory_xact_lock(20261201)"
    both_holding, attempts = asyncio.Event(), []
    holders = 0

    def unit(name: str, *, trade_first: bool) -> Callable[[Any], Awaitable[None]]:
        async def work(session: Any) -> None:
            nonlocal holders
            attempts.append(name)
            trades = TradeRepository(session, scope)
            steps = [
                lambda: trades.insert(make_trade(trade_id=name)),
                lambda: session.execute(text(other_lock)),
            ]
            for step in steps if trade_first else reversed(steps):
                await step()
                if not both_holding.is_set():  # first attempt: hold one lock, then ask the other
                    holders += 1
                    if holders == 2:
                        both_holding.set()
                    await both_holding.wait()

        return work

    await asyncio.gather(
        db.run_idempotent(unit("writes-first", trade_first=True)),
        db.run_idempotent(unit("locks-first", trade_first=False)),
    )
    assert sorted(attempts) in (
        ["locks-first", "locks-first", "writes-first"],
        ["locks-first", "writes-first", "writes-first"],
    )
    assert (scope, 2, 0) in await listed(db)
    assert await revision(db, scope) == 2


async def test_the_revision_needs_a_scope(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        with pytest.raises(ValidationError, match="scope: expected a Scope, got str"):
            await ScopeRepository(session).trades_revision("trend-1/live")  # type: ignore[arg-type]
