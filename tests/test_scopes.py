"""Scopes: every journal row belongs to one bot, mode and run; a scope never sees another's rows.

Runs on both backends; the two-process test on one SQLite file.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from iftb.data.storage import (
    DEFAULT_SCOPE,
    ConflictError,
    DailyPerformance,
    DatabaseManager,
    DuplicateError,
    LLMAnalysisLog,
    NotFoundError,
    PositionModel,
    Scope,
    ScopeRepository,
    SystemEventRepository,
    TradeModel,
    TradeRepository,
    ValidationError,
)
from tests.factories import make_position, make_trade
from tests.test_trades import expected_statistics

NOW = datetime.now(UTC).replace(microsecond=0)
LIVE, PAPER = Scope("trend-1", "live"), Scope("trend-1", "paper")
OTHER_BOT = Scope("mean-rev", "paper")


@pytest.mark.parametrize(
    ("bot", "rule"),
    [
        ("", "cannot be empty"),
        ("   ", "cannot be empty"),
        ("x" * 51, "51 characters exceed the limit of 50"),
        ("bot\x00", "control character U+0000"),
        ("bot\nname", "control character U+000A"),
        ("bot\u200bname", "control character U+200B"),
        (" padded", "cannot start or end with a space"),
        ("a/b", "'/' separates"),
        (42, "expected a name, got int"),
    ],
)
def test_a_bad_bot_name_is_refused_naming_the_rule(bot: object, rule: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(rule)) as caught:
        Scope(bot)  # type: ignore[arg-type]
    assert caught.value.field == "bot"


@pytest.mark.parametrize(
    ("mode", "run_id", "field", "rule"),
    [
        ("demo", None, "mode", "not one of live, paper, backtest"),
        ("backtest", None, "run_id", "a backtest scope is one run"),
        ("live", 3, "run_id", "only backtest scopes have a run"),
        ("backtest", 0, "run_id", "0 is outside"),
        ("backtest", True, "run_id", "expected"),
    ],
)
def test_a_malformed_scope_is_refused(mode: str, run_id: object, field: str, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule) as caught:
        Scope("bot", mode, run_id)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_scopes_print_and_parse_back() -> None:
    for scope in (DEFAULT_SCOPE, PAPER, Scope("b", "backtest", 7)):
        assert Scope.parse(str(scope)) == scope
    assert Scope.parse("solo") == Scope("solo", "live")
    with pytest.raises(ValidationError, match="not a run number"):
        Scope.parse("b/backtest/x")


async def test_unscoped_calls_write_and_read_the_default_scope(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await TradeRepository(session).insert(make_trade(trade_id="t1"))
    async with db.scope().session() as journal:
        stored = await journal.trades.get_by_trade_id("t1")
    assert stored is not None
    assert (stored.bot, stored.mode, stored.run_id) == ("default", "live", None)
    async with db.scope("default", "paper").session() as journal:
        assert await journal.trades.get_by_trade_id("t1") is None


async def test_the_invariants_hold_per_scope(db: DatabaseManager) -> None:
    for scope in (LIVE, PAPER, OTHER_BOT):
        async with db.scope(scope.bot, scope.mode).session() as journal:
            await journal.trades.insert(make_trade(trade_id="same-id"))
            await journal.positions.update_position(make_position())
            await journal.daily_performance.upsert(DailyPerformance(date(2024, 1, 1), "binance"))
    async with db.scope(PAPER.bot, PAPER.mode).session() as journal:
        with pytest.raises(DuplicateError):
            await journal.trades.insert(make_trade(trade_id="same-id"))
        with pytest.raises(ConflictError):
            await journal.positions.update_position(make_position())
        replaced = DailyPerformance(date(2024, 1, 1), "binance", total_trades=3)
        await journal.daily_performance.upsert(replaced)
    async with db.get_session() as session:
        trades = await session.scalar(select(func.count()).select_from(TradeModel))
        positions = await session.scalar(select(func.count()).select_from(PositionModel))
        days = (
            await session.execute(text("SELECT bot, mode, total_trades FROM daily_performance"))
        ).all()
    assert (trades, positions) == (3, 3)
    assert sorted(map(tuple, days)) == [
        ("mean-rev", "paper", 0), ("trend-1", "live", 0), ("trend-1", "paper", 3)
    ]  # fmt: skip


async def test_a_record_of_another_scope_is_refused_and_nothing_is_written(
    db: DatabaseManager,
) -> None:
    async with db.scope(LIVE.bot, LIVE.mode).session() as journal:
        trade = await journal.trades.get_by_id(await journal.trades.insert(make_trade()))
    assert trade is not None
    async with db.scope(PAPER.bot, PAPER.mode).session() as journal:
        trade.id, trade.version, trade.trade_id = None, None, "copied"
        with pytest.raises(ValidationError, match="mode: the record belongs to scope") as caught:
            await journal.trades.insert(trade)
        assert caught.value.field == "mode"
        assert await journal.trades.get_recent() == []


async def test_a_scope_cannot_touch_another_scopes_rows_by_id(db: DatabaseManager) -> None:
    async with db.scope(LIVE.bot, LIVE.mode).session() as journal:
        trade_id = await journal.trades.insert(make_trade(trade_id="live-1"))
        position = await journal.positions.update_position(make_position())
    async with db.scope(PAPER.bot, PAPER.mode).session() as journal:
        with pytest.raises(NotFoundError, match="trend-1/paper"):
            await journal.trades.update(trade_id, stop_loss=Decimal(1))
        with pytest.raises(NotFoundError):
            await journal.trades.close_trade("live-1", Decimal(41000), NOW)
        assert position.id is not None
        with pytest.raises(NotFoundError):
            await journal.positions.close_position(position.id)
        assert await journal.positions.mark_to_market("BTCUSDT", Decimal(1)) == 0
    async with db.scope(LIVE.bot, LIVE.mode).session() as journal:
        stored = await journal.trades.get_by_id(trade_id)
        still = await journal.positions.get_position("BTCUSDT")
    assert stored is not None and stored.stop_loss is None and stored.action == "open"
    assert still is not None and still.is_open and still.current_price is None


async def test_events_and_llm_calls_are_read_per_scope(db: DatabaseManager) -> None:
    for scope, count in ((LIVE, 2), (PAPER, 1)):
        async with db.scope(scope.bot, scope.mode).session() as journal:
            for _ in range(count):
                await journal.events.log_event("restart", "warning", f"{scope} restarted")
                await journal.llm_calls.log(
                    LLMAnalysisLog("signal", model_name="m", estimated_cost=Decimal("0.01"))
                )
    async with db.scope(PAPER.bot, PAPER.mode).session() as journal:
        events = await journal.events.get_recent_events()
        usage = await journal.llm_calls.get_usage_summary()
        counts = await journal.events.count_by_severity()
    assert [e.message for e in events] == ["trend-1/paper restarted"]
    assert [(u.calls, u.estimated_cost) for u in usage] == [(1, Decimal("0.01"))]
    assert counts["warning"] == 1
    async with db.get_session() as session:  # the default scope has none of them
        assert await SystemEventRepository(session).get_recent_events() == []


async def test_concurrent_bots_and_modes_see_only_their_rows_and_statistics(
    db: DatabaseManager,
) -> None:
    scopes = [LIVE, PAPER, OTHER_BOT, Scope("mean-rev", "live")]
    written: dict[Scope, list] = {scope: [] for scope in scopes}  # type: ignore[type-arg]
    start = asyncio.Barrier(len(scopes))

    async def bot(scope: Scope, seed: int) -> None:
        rng = random.Random(seed)
        await start.wait()
        for number in range(40):
            entry = NOW - timedelta(days=rng.uniform(1, 20))
            trade = make_trade(
                trade_id=f"t{number}",  # the same ids in every scope
                action="close",
                entry_time=entry,
                exit_time=entry + timedelta(minutes=rng.randint(1, 500)),
                realized_pnl=Decimal(rng.randint(-(10**6), 10**6)) / 100,
                fee=Decimal(rng.randint(0, 1000)) / 1000,
            )
            async with db.scope(scope.bot, scope.mode).session() as journal:
                trade.id = await journal.trades.insert(trade)
            written[scope].append(trade)
            await asyncio.sleep(0)

    await asyncio.gather(*(bot(scope, seed) for seed, scope in enumerate(scopes)))

    for scope in scopes:
        async with db.scope(scope.bot, scope.mode).session(read_only=True) as journal:
            seen = await journal.trades.get_recent(limit=1000)
            statistics = await journal.trades.get_statistics(days=30)
        assert sorted(t.id for t in seen) == sorted(t.id for t in written[scope])
        assert {(t.bot, t.mode) for t in seen} == {(scope.bot, scope.mode)}
        assert statistics == expected_statistics(written[scope])
    async with db.get_session(read_only=True) as session:
        compared = await ScopeRepository(session).compare(scopes)
        listed = await ScopeRepository(session).list_scopes()
    assert [c.statistics for c in compared] == [expected_statistics(written[s]) for s in scopes]
    assert {(s.scope, s.trades) for s in listed} == {(scope, 40) for scope in scopes}


async def test_comparing_needs_one_to_fifty_scopes(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        for scopes in ([], [LIVE] * 51):
            with pytest.raises(ValidationError, match="compare 1 to 50 scopes"):
                await ScopeRepository(session).compare(scopes)
        with pytest.raises(ValidationError, match="expected Scope values"):
            await ScopeRepository(session).compare(["trend-1/live"])  # type: ignore[list-item]


async def test_a_repository_needs_a_scope_object(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        with pytest.raises(ValidationError, match="expected a Scope, got str"):
            TradeRepository(session, "trend-1/paper")  # type: ignore[arg-type]


async def test_the_database_refuses_a_malformed_scope_written_around_the_library(
    db: DatabaseManager,
) -> None:
    insert = (
        "INSERT INTO trades (trade_id, symbol, exchange, side, action, entry_price, quantity, "
        "bot, mode, run_id) VALUES ('x', 'BTCUSDT', 'binance', 'long', 'open', 1, 1, "
        ":bot, :mode, NULL)"
    )
    for mode in ("demo", "backtest"):  # unknown; a backtest row without its run
        with pytest.raises(ValidationError):
            async with db.get_session() as session:
                await session.execute(text(insert), {"bot": "b", "mode": mode})


ISOLATED_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from decimal import Decimal
    from datetime import UTC, datetime, timedelta
    from iftb.data.storage import DatabaseManager, Trade

    async def main(url, bot, mode):
        async with DatabaseManager(url) as db:
            handle = db.scope(bot, mode)
            for number in range(30):
                entry = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=number)
                async with handle.session() as journal:
                    await journal.trades.insert(Trade(
                        trade_id=f"t{number}", symbol="BTCUSDT", exchange="binance",
                        side="long", action="close", entry_price=Decimal(100),
                        quantity=Decimal(1), exit_time=entry + timedelta(minutes=5),
                        realized_pnl=Decimal(number), entry_time=entry))
                    await journal.state.set("last", number)

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.sqlite_only
async def test_two_processes_of_two_scopes_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    async with DatabaseManager(url):
        pass
    script = tmp_path / "writer.py"
    script.write_text(ISOLATED_WRITER)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), url, "trend-1", mode, stderr=subprocess.PIPE
        )
        for mode in ("live", "paper")
    ]
    for process in processes:
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
    async with DatabaseManager(url) as db:
        for mode in ("live", "paper"):
            async with db.scope("trend-1", mode).session() as journal:
                trades = await journal.trades.get_recent(limit=100)
                statistics = await journal.trades.get_statistics(days=100_000)
                assert await journal.state.get("last") == 29
            assert len(trades) == 30 and {t.mode for t in trades} == {mode}
            assert statistics.net_pnl == sum(range(30))
