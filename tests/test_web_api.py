"""The dashboard's API (``iftb.web``) on the demo's data, on SQLite and PostgreSQL: each
endpoint's figures equal the repositories' for the same inputs, and only the right token reads.

One demo database per backend serves the whole module: the API only reads, and a test checks
that nothing it answers writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from iftb.commands import demo
from iftb.data.storage import DatabaseManager, OHLCVRepository, Scope, ScopeRepository
from iftb.web import create_app
from tests.conftest import BACKENDS
from tests.support.pg_cluster import PostgresServer
from tests.support.web_demo import LEDGER_SCOPE, LEDGER_TRADE, TOKEN, demo_database

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAPER = {"bot": "demo", "mode": "paper"}
WINDOW = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}


@pytest.fixture(scope="module", params=BACKENDS)
async def demo_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    postgres_server: PostgresServer | None,
    postgres_template: str | None,
) -> AsyncIterator[str]:
    """A database holding the demo's data, built once per backend for the module."""
    folder = tmp_path_factory.mktemp("web")
    async with demo_database(
        request.param, folder, sqlite_template, postgres_server, postgres_template
    ) as url:
        yield url


@pytest.fixture(scope="module")
async def manager(demo_url: str) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(demo_url) as connected:
        yield connected


@pytest.fixture(scope="module")
async def client(manager: DatabaseManager) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(manager, token=TOKEN)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=AUTH
    ) as http:
        yield http


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def decimals(row: dict[str, Any], *names: str) -> dict[str, Decimal | None]:
    return {name: None if row[name] is None else Decimal(row[name]) for name in names}


def moment(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


async def test_scopes_are_the_repositorys_with_their_counts(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    body = await get(client, "/api/scopes")
    async with manager.get_session(read_only=True) as session:
        expected = await ScopeRepository(session).list_scopes()
    assert [row["name"] for row in body] == [str(summary.scope) for summary in expected]
    for row, summary in zip(body, expected, strict=True):
        assert Scope(**row["scope"]) == summary.scope
        assert (row["trades"], row["open_positions"]) == (summary.trades, summary.open_positions)
        last = summary.last_exit
        assert (row["last_exit"] and moment(row["last_exit"])) == last
    assert {"default/live", "demo/paper", "demo/live"} <= {row["name"] for row in body}


@pytest.mark.parametrize(
    "query",
    [{}, PAPER, {"start": "2010-01-01", "end": "2100-01-01T00:00:00+02:00"}, {"exchange": "x"}],
    ids=["default", "paper", "window", "other-exchange"],
)
async def test_statistics_equal_the_repositorys_for_the_window(
    client: httpx.AsyncClient, manager: DatabaseManager, query: dict[str, str]
) -> None:
    body = await get(client, "/api/statistics", **query)
    scope = Scope(query.get("bot", "default"), query.get("mode", "live"))
    start = datetime.fromisoformat(query["start"]).replace(tzinfo=UTC) if "start" in query else None
    end = datetime.fromisoformat(query["end"]) if "end" in query else None
    async with manager.get_session(read_only=True) as session:
        [expected] = await ScopeRepository(session).compare(
            [scope], start=start, end=end, exchange=query.get("exchange")
        )
    statistics = asdict(expected.statistics)
    holding = statistics.pop("avg_holding_time")
    for name, value in statistics.items():
        assert (Decimal(body[name]) if isinstance(value, Decimal) else body[name]) == value, name
    assert body["avg_holding_time"] == _iso_duration(holding)
    assert body["scope"] == {"bot": scope.bot, "mode": scope.mode, "run_id": None}
    if end is not None:
        assert moment(body["end"]) == end


async def test_statistics_keep_every_digit_as_a_string(client: httpx.AsyncClient) -> None:
    body = await get(client, "/api/statistics", **PAPER)
    assert body["total_trades"] > 0
    assert isinstance(body["net_pnl"], str) and "." in body["net_pnl"]
    assert Decimal(body["net_pnl"]) == Decimal(body["gross_profit"]) - Decimal(body["gross_loss"])


async def test_daily_rows_and_equity_curve_equal_the_repositorys(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    daily = await get(client, "/api/daily", exchange=demo.EXCHANGE, **WINDOW)
    equity = await get(client, "/api/equity", exchange=demo.EXCHANGE, **WINDOW)
    async with manager.scope().session(read_only=True) as journal:
        rows = await journal.daily_performance.get_range(
            date(2000, 1, 1), date(2100, 1, 1), demo.EXCHANGE
        )
        curve = await journal.daily_performance.get_equity_curve(
            date(2000, 1, 1), date(2100, 1, 1), demo.EXCHANGE
        )
    assert len(daily) == len(rows) > 1
    for got, row in zip(daily, rows, strict=True):
        assert date.fromisoformat(got["date"]) == row.date
        assert decimals(got, "net_pnl", "ending_balance", "total_fees") == {
            "net_pnl": row.net_pnl,
            "ending_balance": row.ending_balance,
            "total_fees": row.total_fees,
        }
        assert got["total_trades"] == row.total_trades
    assert [(date.fromisoformat(p["date"]), Decimal(p["balance"])) for p in equity] == curve
    peak = Decimal("-Infinity")
    for point in equity:
        peak = max(peak, Decimal(point["balance"]))
        assert Decimal(point["peak"]) == peak
        assert Decimal(point["drawdown"]) == peak - Decimal(point["balance"]) >= 0


async def test_a_window_narrows_the_daily_rows(client: httpx.AsyncClient) -> None:
    every = await get(client, "/api/daily", exchange=demo.EXCHANGE)
    last_day = every[-1]["date"]
    only = await get(client, "/api/daily", exchange=demo.EXCHANGE, start=last_day, end=last_day)
    assert [row["date"] for row in only] == [last_day]


async def test_open_positions_equal_the_repositorys(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    params = {"bot": LEDGER_SCOPE.bot, "exchange": demo.EXCHANGE}
    body = await get(client, "/api/positions", **params)
    async with manager.scope(LEDGER_SCOPE.bot).session(read_only=True) as journal:
        expected = await journal.positions.get_open_positions(demo.EXCHANGE)
    assert len(body) == len(expected) == 1
    [position], [stored] = body, expected
    assert position["trade_id"] == stored.trade_id == LEDGER_TRADE
    assert Decimal(position["quantity"]) == stored.quantity
    assert Decimal(position["entry_price"]) == stored.entry_price
    assert position["unrealized_pnl"] == (
        None if stored.unrealized_pnl is None else str(stored.unrealized_pnl)
    )
    assert await get(client, "/api/positions", exchange=demo.EXCHANGE) == []


async def test_trades_are_paged_newest_first_with_their_total(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    first = await get(client, "/api/trades", limit=2, **PAPER)
    second = await get(client, "/api/trades", limit=2, offset=2, **PAPER)
    async with manager.scope("demo", "paper").session(read_only=True) as journal:
        page = await journal.trades.get_page(limit=4)
    assert first["total"] == second["total"] == page.total > 4
    listed = [trade["trade_id"] for trade in first["trades"] + second["trades"]]
    assert listed == [trade.trade_id for trade in page.trades]
    for got, trade in zip(first["trades"], page.trades, strict=False):
        assert Decimal(got["realized_pnl"]) == trade.realized_pnl
        assert moment(got["entry_time"]) == trade.entry_time


async def test_trades_filter_by_symbol_and_window(client: httpx.AsyncClient) -> None:
    every = await get(client, "/api/trades", limit=1000, **PAPER)
    entries = sorted(moment(trade["entry_time"]) for trade in every["trades"])
    start, end = entries[1], entries[-1]
    window = await get(client, "/api/trades", start=start.isoformat(), end=end.isoformat(), **PAPER)
    assert window["total"] == len(entries) - 2
    assert all(start <= moment(t["entry_time"]) < end for t in window["trades"])
    assert (await get(client, "/api/trades", symbol="ETHUSDT", **PAPER))["total"] == 0
    mine = await get(client, "/api/trades", symbol=demo.SYMBOL, **PAPER)
    assert mine["total"] == every["total"]


async def test_markers_mark_each_entry_and_exit(client: httpx.AsyncClient) -> None:
    trades = (await get(client, "/api/trades", limit=1000, **PAPER))["trades"]
    marks = await get(client, "/api/trades/markers", symbol=demo.SYMBOL, **PAPER)
    assert len(marks) == 2 * len(trades)
    by_trade = {trade["trade_id"]: trade for trade in trades}
    for mark in marks:
        trade = by_trade[mark["trade_id"]]
        price = trade["entry_price"] if mark["kind"] == "entry" else trade["exit_price"]
        assert mark["price"] == price
    assert [moment(m["time"]) for m in marks] == sorted(moment(m["time"]) for m in marks)


async def test_a_trades_ledger_is_its_orders_fills_and_funding(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    body = await get(client, f"/api/trades/{LEDGER_TRADE}/ledger", bot=LEDGER_SCOPE.bot)
    async with manager.scope(LEDGER_SCOPE.bot).session(read_only=True) as journal:
        fills = await journal.ledger.fills_of_trade(LEDGER_TRADE)
        orders = await journal.ledger.orders_of_trade(LEDGER_TRADE)
    assert [f["exchange_fill_id"] for f in body["fills"]] == [f.exchange_fill_id for f in fills]
    assert [Decimal(f["price"]) for f in body["fills"]] == [f.price for f in fills]
    assert [o["client_order_id"] for o in body["orders"]] == ["o-1"]
    assert Decimal(body["orders"][0]["filled_quantity"]) == orders[0].filled_quantity
    assert body["funding"] == []
    assert body["trade"]["trade_id"] == LEDGER_TRADE


async def test_llm_usage_by_model_and_by_day_equals_the_repositorys(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    body = await get(client, "/api/llm-usage", days=7)
    async with manager.scope().session(read_only=True) as journal:
        by_model = await journal.llm_calls.get_usage_summary(7)
        by_day = await journal.llm_calls.get_daily_usage(7)
    assert [row["model"] for row in body["by_model"]] == [usage.group for usage in by_model]
    for row, usage in zip(body["by_model"], by_model, strict=True):
        assert Decimal(row["estimated_cost"]) == usage.estimated_cost
        assert (row["calls"], row["total_tokens"]) == (usage.calls, usage.total_tokens)
    assert len(body["by_day"]) == len(by_day) >= 1
    for row, day in zip(body["by_day"], by_day, strict=True):
        assert date.fromisoformat(row["day"]) == day.day
        assert Decimal(row["estimated_cost"]) == day.estimated_cost
    assert sum(Decimal(row["estimated_cost"]) for row in body["by_day"]) == sum(
        usage.estimated_cost for usage in by_model
    )


async def test_events_are_warnings_and_worse_newest_first(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    body = await get(client, "/api/events", limit=5)
    async with manager.scope().session(read_only=True) as journal:
        warnings = await journal.events.get_recent_events("warning", limit=5)
        errors = await journal.events.get_recent_events("error", limit=5)
    expected = sorted([*warnings, *errors], key=lambda e: (e.created_at, e.id), reverse=True)
    assert [event["id"] for event in body] == [event.id for event in expected[:5]]
    assert {event["severity"] for event in body} <= {"warning", "error", "critical"}
    assert "error" in {event["severity"] for event in body}
    everything = await get(client, "/api/events", limit=1000, min_level="debug")
    assert "info" in {event["severity"] for event in everything}


async def test_inventory_is_the_candle_catalogs(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    body = await get(client, "/api/inventory")
    async with manager.get_session(read_only=True) as session:
        inventory = await OHLCVRepository(session).get_inventory()
    assert [(s["symbol"], s["exchange"], s["timeframe"], s["count"]) for s in body] == [
        (c.symbol, c.exchange, c.timeframe, c.count) for c in inventory
    ]
    assert [(s["missing"], s["gaps"]) for s in body] == [(c.missing, c.gaps) for c in inventory]
    assert [moment(s["first"]) for s in body] == [c.first for c in inventory]
    assert body[0]["gaps"] > 0  # the shipped sample has holes


async def test_candles_are_paged_oldest_first_by_time(
    client: httpx.AsyncClient, manager: DatabaseManager
) -> None:
    series = {"symbol": demo.SYMBOL, "exchange": demo.EXCHANGE, "timeframe": demo.TIMEFRAME}
    first = await get(client, "/api/candles", limit=50, **series)
    second = await get(client, "/api/candles", limit=50, start=first["next_start"], **series)
    async with manager.get_session(read_only=True) as session:
        repo = OHLCVRepository(session)
        [coverage] = await repo.get_coverage(demo.SYMBOL, demo.TIMEFRAME, demo.EXCHANGE)
        expected = await repo.get_range(
            demo.SYMBOL,
            demo.TIMEFRAME,
            coverage.first,
            moment(second["next_start"]) - timedelta(seconds=1),
            demo.EXCHANGE,
        )
    got = first["candles"] + second["candles"]
    assert len(got) == len(expected) == 100
    assert [moment(c["time"]) for c in got] == [bar.timestamp for bar in expected]
    assert [Decimal(c["close"]) for c in got] == [bar.close for bar in expected]
    assert [Decimal(c["volume"]) for c in got] == [bar.volume for bar in expected]
    last = await get(client, "/api/candles", start=coverage.last.isoformat(), **series)
    assert len(last["candles"]) == 1 and last["next_start"] is None


def _iso_duration(value: timedelta) -> str:
    from pydantic import TypeAdapter

    return str(TypeAdapter(timedelta).dump_python(value, mode="json"))
