"""The scope commands of ``iftb-db`` (``scopes``, ``compare``, ``runs``, ``run show``/``delete``,
``state``, ``locks``) driven through Typer's runner on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner, Result

from iftb.cli import app
from iftb.data.storage import (
    BacktestRunRepository,
    DatabaseManager,
    Scope,
    ScopeRepository,
    Trade,
    TradeStatistics,
)
from tests.factories import T0, make_trade
from tests.support.cli_results import ok, refused

Invoke = Callable[..., Result]
PAPER = Scope("trend-1", "paper")


@pytest.fixture
def invoke(database_url: str) -> Invoke:
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, [*args, "--database-url", database_url], input=stdin)

    return run


@pytest.fixture
def seeded(database_url: str) -> dict[str, int]:
    """Live (default scope, net +50), paper of trend-1 (net +20, one trade open, state, a lock),
    a finished backtest of trend-1 (3 trades, net +35) and a running one of mean-2."""
    return asyncio.run(_seed(database_url))


async def _seed(database_url: str) -> dict[str, int]:
    async with DatabaseManager(database_url) as manager:
        async with manager.scope().session() as live:
            for side, exit_price in (("long", "41000"), ("short", "40500")):
                trade = make_trade(side=side)
                await live.trades.insert(trade)
                await live.trades.close_trade(trade.trade_id, Decimal(exit_price), T0 + _hours(2))
        async with manager.scope(PAPER.bot, PAPER.mode).session() as paper:
            trade = make_trade()
            await paper.trades.insert(trade)
            await paper.trades.close_trade(trade.trade_id, Decimal("40200"), T0 + _hours(3))
            await paper.trades.insert(make_trade(symbol="ETHUSDT"))
            await paper.state.set("balance", Decimal("10020.50000000"))
            await paper.state.set("open_orders", 2)
            await paper.state.set("flags", {"paused": False})
            await paper.locks.lock("SOLUSDT", datetime.now(UTC) + _hours(6), reason="stop loss")
        async with manager.get_session() as session:
            runs = BacktestRunRepository(session)
            finished = await runs.start(
                "trend-1", "sma", timeframe="1h", data_start=T0, data_end=T0 + _hours(48),
                config={"fast": 10, "slow": 30},
            )  # fmt: skip
            await runs.record_trades(finished.id, [_closed(i, pnl) for i, pnl in enumerate("+-+")])
            await runs.finish(finished.id)
            running = await runs.start(
                "mean-2", "revert", timeframe="1h", data_start=T0, data_end=T0 + _hours(8)
            )
            await runs.record_trades(running.id, [_closed(0, "+")])
    return {"finished": finished.id, "running": running.id}


def _closed(number: int, sign: str) -> Trade:
    pnl = {"+": Decimal(10 + 10 * number), "-": Decimal(-5)}[sign]
    return make_trade(
        trade_id=f"bt-{number}", action="close", exit_price=Decimal("40100"),
        exit_time=T0 + _hours(number + 1), realized_pnl=pnl,
    )  # fmt: skip


def _hours(count: int) -> timedelta:
    return timedelta(hours=count)


def test_help_lists_the_scope_commands() -> None:
    output = CliRunner().invoke(app, ["--help"]).output
    for command in ("scopes", "compare", "runs", "run ", "state", "locks"):
        assert command in output
    output = CliRunner().invoke(app, ["run", "--help"]).output
    assert "show" in output and "delete" in output


def test_scopes_lists_every_bot_mode_and_run(invoke: Invoke, seeded: dict[str, int]) -> None:
    lines = ok(invoke("scopes")).splitlines()
    rows = {tuple(cell.strip() for cell in line.split("│")[1:5]) for line in lines if "│" in line}
    assert ("default", "live", "", "2") in rows
    assert ("trend-1", "paper", "", "2") in rows  # one closed, one open
    assert ("trend-1", "backtest", str(seeded["finished"]), "3") in rows
    assert ("mean-2", "backtest", str(seeded["running"]), "1") in rows


def test_scopes_on_an_empty_journal_says_so(invoke: Invoke) -> None:
    assert "journal is empty" in ok(invoke("scopes"))


def test_compare_puts_scopes_side_by_side(invoke: Invoke, seeded: dict[str, int]) -> None:
    output = ok(invoke("compare", "default/live", "trend-1/paper", "trend-1/backtest/latest"))
    assert "default/live" in output and "trend-1/paper" in output
    assert f"trend-1/backtest/{seeded['finished']}" in output  # latest: the finished run
    net = next(line for line in output.splitlines() if "net pnl" in line)
    assert [Decimal(cell) for cell in net.split("│")[2:5]] == [50, 20, 35]
    trades = next(line for line in output.splitlines() if "total trades" in line)
    assert [cell.strip() for cell in trades.split("│")[2:5]] == ["2", "1", "3"]
    for statistic in ("win rate", "total fees", "profit factor", "max drawdown", "expectancy"):
        assert statistic in output


def test_compare_window_and_filters(invoke: Invoke, seeded: dict[str, int]) -> None:
    def trades(*options: str) -> list[str]:
        output = ok(invoke("compare", "trend-1", "trend-1/paper", *options))
        line = next(line for line in output.splitlines() if "total trades" in line)
        return [cell.strip() for cell in line.split("│")[2:4]]

    assert trades() == ["0", "1"]  # a bare bot name is its live scope
    assert trades("--days", "30") == ["0", "0"]  # the seeded trades closed in 2024
    assert trades("--start", "2024-01-01", "--end", "2024-01-02") == ["0", "1"]
    assert trades("--symbol", "ETHUSDT") == ["0", "0"]
    assert trades("--exchange", "binance") == ["0", "1"]


def test_runs_lists_runs_newest_first_and_filters(invoke: Invoke, seeded: dict[str, int]) -> None:
    output = ok(invoke("runs"))
    assert "sma" in output and "revert" in output and "running" in output
    assert output.index("revert") < output.index("sma")  # newest first
    output = ok(invoke("runs", "--bot", "trend-1"))
    assert "sma" in output and "revert" not in output
    assert "revert" in ok(invoke("runs", "--strategy", "revert", "--limit", "1"))
    assert "no backtest runs" in ok(invoke("runs", "--bot", "nobody"))


def test_run_show_prints_settings_config_and_statistics(
    invoke: Invoke, seeded: dict[str, int]
) -> None:
    output = ok(invoke("run", "show", str(seeded["finished"])))
    assert f"trend-1/backtest/{seeded['finished']}" in output
    assert '"fast": 10' in output and "finished" in output
    net = next(line for line in output.splitlines() if "net pnl" in line)
    assert Decimal(net.split("│")[2]) == 35
    assert "2:00:00" in output  # the average holding time, stored in seconds
    shown = [line.split("│")[1].strip() for line in output.splitlines() if "│" in line]
    statistics = [f.name.replace("_", " ") for f in dataclasses.fields(TradeStatistics)]
    assert [name for name in shown if name in statistics] == statistics  # same on both backends


def test_run_delete_removes_only_the_backtests_trades(
    invoke: Invoke, database_url: str, seeded: dict[str, int]
) -> None:
    run_id = str(seeded["finished"])
    result = invoke("run", "delete", run_id, stdin="n\n")
    assert result.exit_code == 1 and "3 trades?" in result.output  # asked, refused: kept
    output = ok(invoke("run", "delete", run_id, "--yes"))
    assert f"deleted backtest run {run_id} and its 3 trades" in output

    counts = asyncio.run(_trade_counts(database_url))
    assert counts == {
        "default/live": 2,
        "trend-1/paper": 2,
        f"mean-2/backtest/{seeded['running']}": 1,
    }
    refused(invoke("run", "show", run_id), f"no backtest run with id {run_id}")


def test_run_delete_after_confirmation(invoke: Invoke, seeded: dict[str, int]) -> None:
    run_id = str(seeded["running"])
    assert "and its 1 trades" in ok(invoke("run", "delete", run_id, stdin="y\n"))
    assert "revert" not in ok(invoke("runs"))


async def _trade_counts(database_url: str) -> dict[str, int]:
    async with DatabaseManager(database_url) as manager, manager.get_session() as session:
        return {str(s.scope): s.trades for s in await ScopeRepository(session).list_scopes()}


def test_state_lists_keys_values_and_types(invoke: Invoke, seeded: dict[str, int]) -> None:
    output = ok(invoke("state", "--scope", "trend-1/paper"))
    rows = {tuple(cell.strip() for cell in line.split("│")[1:4]) for line in output.splitlines()}
    assert ("balance", "10020.50000000", "decimal") in rows
    assert ("open_orders", "2", "int") in rows
    assert ("flags", '{"paused": false}', "json") in rows
    assert "no bot state in default/live" in ok(invoke("state"))


def test_locks_lists_the_active_locks(invoke: Invoke, seeded: dict[str, int]) -> None:
    output = ok(invoke("locks", "--scope", "trend-1/paper"))
    assert "SOLUSDT" in output and "stop loss" in output and "*" in output
    assert "no active pair locks in trend-1/live" in ok(invoke("locks", "--scope", "trend-1"))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("compare", "trend-1/bogus"), ("'trend-1/bogus'", "mode", "live, paper, backtest")),
        (("compare", "trend-1/paper/3"), ("only backtest scopes have a run",)),
        (("compare", "trend-1/backtest/x"), ("'x' is not a run number",)),
        (("compare", "trend-1/backtest"), ("a backtest scope is one run",)),
        (("compare", "trend-1/backtest/999"), ("no backtest run with id 999",)),
        (("compare", "nobody/backtest/latest"), ("'nobody' has no finished backtest run",)),
        (("compare", "mean-2/backtest/latest"), ("'mean-2' has no finished backtest run",)),
        (("compare", "/paper"), ("bot name cannot be empty",)),
        (("compare", "trend-1", "--days", "3", "--start", "2024-01-01"), ("--days",)),
        (("compare", "trend-1", "--start", "yesterday"), ("--start", "ISO 8601")),
        (("run", "show", "999"), ("no backtest run with id 999",)),
        (("run", "delete", "999", "--yes"), ("no backtest run with id 999",)),
        (("state", "--scope", "trend-1/sandbox"), ("mode", "'sandbox'")),
        (("locks", "--scope", "trend-1/live/2"), ("only backtest scopes have a run",)),
    ],
)
def test_bad_input_is_one_clear_line(
    invoke: Invoke, seeded: dict[str, int], args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    refused(invoke(*args), *words)


def test_a_run_of_another_bot_is_refused(invoke: Invoke, seeded: dict[str, int]) -> None:
    refused(invoke("compare", f"mean-2/backtest/{seeded['finished']}"), "belongs to bot 'trend-1'")


@pytest.mark.parametrize("args", [("run", "show", "abc"), ("compare",), ("runs", "--limit", "0")])
def test_usage_errors_exit_2(invoke: Invoke, args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def test_demo_compares_live_paper_and_backtest(invoke: Invoke) -> None:
    output = ok(invoke("demo", "--days", "3"))
    assert "paper session (demo/paper): 3 trades recorded" in output
    assert "backtest run 1 (demo/backtest/1):" in output and "live vs paper vs backtest" in output
    assert "default/live" in output and "demo/backtest/1" in output
    again = ok(invoke("demo", "--days", "3"))
    assert again.count("already recorded") == 3

    assert "demo/backtest/1" in ok(
        invoke("compare", "default", "demo/paper", "demo/backtest/latest")
    )
    assert "momentum" in ok(invoke("runs", "--bot", "demo"))
    assert "balance" in ok(invoke("state", "--scope", "demo/paper"))


def test_the_journal_reports_take_a_scope(invoke: Invoke, seeded: dict[str, int]) -> None:
    """stats, events and llm-usage read the scope named (the default scope without one)."""
    days = str((datetime.now(UTC) - T0).days + 2)
    live = invoke("stats", "--days", days)
    paper = invoke("stats", "--days", days, "--scope", "trend-1/paper")
    backtest = invoke("stats", "--days", days, "--scope", "trend-1/backtest/latest")
    assert live.exit_code == paper.exit_code == backtest.exit_code == 0, live.output
    assert [_total_trades(r.output) for r in (live, paper, backtest)] == [2, 1, 3]
    assert "trend-1/paper" in paper.output
    for command in ("events", "llm-usage"):
        result = invoke(command, "--scope", "trend-1/paper")
        assert result.exit_code == 0, result.output
    refused = invoke("stats", "--scope", "trend-1/dream")
    assert refused.exit_code == 1 and "scope 'trend-1/dream'" in refused.output


def _total_trades(output: str) -> int:
    found = re.search(r"total trades\s+│\s+(\d+)", output)
    assert found is not None, output
    return int(found.group(1))
