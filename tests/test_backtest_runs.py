"""Backtest runs: started, written in bulk, finished with a summary, listed, deleted whole."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from iftb.data.storage import (
    BacktestRunRepository,
    ConflictError,
    DatabaseManager,
    DuplicateError,
    NotFoundError,
    Scope,
    ScopeRepository,
    TradeModel,
    TradeRepository,
    ValidationError,
)
from tests.factories import T0, make_trade
from tests.test_trades import expected_statistics

WINDOW = {"timeframe": "1h", "data_start": T0, "data_end": T0 + timedelta(days=30)}


def closed_trades(count: int, *, offset: int = 0) -> list:  # type: ignore[type-arg]
    return [
        make_trade(
            trade_id=f"bt-{number}",
            action="close",
            entry_time=T0 + timedelta(hours=number),
            exit_time=T0 + timedelta(hours=number, minutes=30),
            exit_price=Decimal("40100"),
            realized_pnl=Decimal((number * 37 + offset) % 200 - 90) / 8,
            fee=Decimal("0.12345678"),
            decision_reasons={"signal": number},
        )
        for number in range(count)
    ]


async def test_a_run_records_its_trades_in_bulk_and_finishes_with_their_statistics(
    db: DatabaseManager,
) -> None:
    trades = closed_trades(500)
    async with db.get_session() as session:
        runs = BacktestRunRepository(session)
        run = await runs.start(
            "trend-1", "ema-cross", strategy_version="1.2", config={"fast": 12}, **WINDOW
        )
        assert (run.status, run.trade_count, run.scope) == (
            "running",
            0,
            Scope("trend-1", "backtest", run.id),
        )
        assert await runs.record_trades(run.id, trades) == 500
        finished = await runs.finish(run.id, starting_balance=Decimal(1000))
    async with db.scope("trend-1", "backtest", run.id).session(read_only=True) as journal:
        stored = await journal.trades.get_recent(limit=1000)
        statistics = await journal.trades.get_statistics(days=100_000)
    by_id = {t.trade_id: t for t in stored}
    for trade in trades:  # every value to the last digit, the JSON too
        copy = by_id[trade.trade_id]
        assert (copy.realized_pnl, copy.fee, copy.exit_time) == (
            trade.realized_pnl,
            trade.fee,
            trade.exit_time,
        )
        assert copy.decision_reasons == trade.decision_reasons and copy.leverage == trade.leverage
    assert statistics == expected_statistics(trades)
    assert finished.status == "finished" and finished.finished_at is not None
    assert finished.trade_count == 500 and finished.config == {"fast": 12}
    assert finished.summary["total_trades"] == 500
    assert Decimal(finished.summary["net_pnl"]) == statistics.net_pnl


async def test_one_bad_trade_rejects_the_batch_naming_it(db: DatabaseManager) -> None:
    trades = closed_trades(10)
    trades[7].fee = Decimal("-1")
    async with db.get_session() as session:
        runs = BacktestRunRepository(session)
        run = await runs.start("trend-1", "ema-cross", **WINDOW)
        with pytest.raises(ValidationError, match=r"row 7: fee: must be ≥ 0") as caught:
            await runs.record_trades(run.id, trades)
        assert caught.value.index == 7
        assert gc.isenabled()  # the bulk loop's pause of the cycle collector ended with it
        trades[7].fee = Decimal(0)
        trades[3].trade_id = trades[2].trade_id
        with pytest.raises(DuplicateError):
            await runs.record_trades(run.id, trades)
        trades[3].trade_id, trades[5].mode = "unique", "paper"
        with pytest.raises(ValidationError, match="row 5: mode: the record belongs to"):
            await runs.record_trades(run.id, trades)
        assert await session.scalar(select(func.count()).select_from(TradeModel)) == 0


async def test_a_finished_run_takes_no_more_writes(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        runs = BacktestRunRepository(session)
        run = await runs.start("trend-1", "ema-cross", **WINDOW)
        failed = await runs.finish(run.id, status="failed", error_message="data gap")
        with pytest.raises(ConflictError, match="is failed"):
            await runs.record_trades(run.id, closed_trades(1))
        with pytest.raises(ConflictError):
            await runs.finish(run.id)
        with pytest.raises(ValidationError, match="ends as 'finished' or 'failed'"):
            await runs.finish((await runs.start("b", "s", **WINDOW)).id, status="running")
    assert (failed.status, failed.error_message) == ("failed", "data gap")


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"bot": ""}, "bot: a bot name cannot be empty"),
        ({"strategy": " "}, "strategy: a strategy name cannot be empty"),
        ({"strategy": "s" * 101}, "strategy: 101 characters exceed the limit of 100"),
        ({"timeframe": "7x"}, "timeframe"),
        ({"data_end": T0 - timedelta(days=1)}, "data_end: .* is before data_start"),
        ({"data_start": datetime(2024, 1, 1)}, "data_start"),  # naive
        ({"config": {"x": float("nan")}}, "config: nan is not a finite number"),
    ],
)
async def test_a_bad_run_is_refused_and_nothing_is_written(
    db: DatabaseManager,
    changes: dict,
    rule: str,  # type: ignore[type-arg]
) -> None:
    arguments = {"bot": "trend-1", "strategy": "ema", **WINDOW} | changes
    async with db.get_session() as session:
        runs = BacktestRunRepository(session)
        with pytest.raises(ValidationError, match=rule):
            await runs.start(**arguments)
        assert await runs.list_runs() == []


async def test_runs_are_listed_newest_first_with_their_trade_counts(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        runs = BacktestRunRepository(session)
        first = await runs.start("trend-1", "ema", **WINDOW)
        await runs.record_trades(first.id, closed_trades(3))
        await runs.finish(first.id)
        second = await runs.start("trend-1", "ema", **WINDOW)
        await runs.record_trades(second.id, closed_trades(5))  # the same trade ids: another run
        await runs.finish(second.id)
        other = await runs.start("mean-rev", "bands", **WINDOW)
        listed = await runs.list_runs()
        mine = await runs.list_runs(bot="trend-1")
        latest = await runs.latest("trend-1", "ema")
        running = await runs.list_runs(status="running")
    assert [(r.id, r.trade_count) for r in listed] == [(other.id, 0), (second.id, 5), (first.id, 3)]
    assert [r.id for r in mine] == [second.id, first.id]
    assert latest is not None and latest.id == second.id
    assert [r.id for r in running] == [other.id]


async def test_deleting_a_run_deletes_its_rows_and_nothing_else(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        runs = BacktestRunRepository(session)
        kept = await runs.start("trend-1", "ema", **WINDOW)
        doomed = await runs.start("trend-1", "ema", **WINDOW)
        for run in (kept, doomed):
            await runs.record_trades(run.id, closed_trades(20))
        await TradeRepository(session, Scope("trend-1", "live")).insert(make_trade(trade_id="bt-0"))
        await TradeRepository(session, Scope("trend-1", "paper")).insert(
            make_trade(trade_id="bt-0")
        )
    async with db.scope("trend-1", "backtest", doomed.id).session() as journal:
        await journal.events.log_event("backtest", "info", "started")
        await journal.state.set("equity", Decimal("1000.5"))
    async with db.get_session() as session:
        assert await BacktestRunRepository(session).delete(doomed.id) == 20
        with pytest.raises(NotFoundError, match=f"no backtest run with id {doomed.id}"):
            await BacktestRunRepository(session).delete(doomed.id)
        scopes = {s.scope: s.trades for s in await ScopeRepository(session).list_scopes()}
    assert scopes == {
        Scope("trend-1", "backtest", kept.id): 20,
        Scope("trend-1", "live"): 1,
        Scope("trend-1", "paper"): 1,
    }


async def test_a_bulk_written_trade_is_stored_exactly_as_a_single_insert_stores_it(
    db: DatabaseManager,
) -> None:
    """Same stored form (SQLite's fixed-width decimal and time text included): sorting, equality
    and every SQL aggregate treat the two paths' rows alike."""
    fields = {
        "entry_price": Decimal("35"),
        "quantity": Decimal("0.4371074"),
        "realized_pnl": Decimal("1.5"),
        "exit_price": Decimal("35.1"),
        "action": "close",
        "exit_time": T0 + timedelta(minutes=1),
    }
    async with db.get_session() as session:
        runs = BacktestRunRepository(session)
        run = await runs.start("trend-1", "ema", **WINDOW)
        await runs.record_trades(run.id, [make_trade(trade_id="same", **fields)])
        await TradeRepository(session).insert(make_trade(trade_id="same", **fields))
        columns = ", ".join(
            name
            for name in TradeModel.__table__.columns.keys()  # noqa: SIM118
            if name not in ("id", "created_at", "updated_at", "bot", "mode", "run_id")
        )
        stored = (await session.execute(text(f"SELECT {columns} FROM trades"))).all()
    assert len(stored) == 2 and stored[0] == stored[1]
