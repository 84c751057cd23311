"""The demo's data (``iftb.commands.demo``) plus what the demo leaves out — an open position
built from a ledger's order and fill, an error event — for the dashboard's tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from iftb.commands import demo
from iftb.data.storage import DatabaseManager, Fill, Order, Scope
from tests.conftest import scratch_postgres_database
from tests.support.pg_cluster import PostgresServer

TOKEN = "test-token-0123456789abcdef"
LEDGER_SCOPE = Scope("demo", "live")
LEDGER_TRADE = "ledger-1"
DAYS = 5


@asynccontextmanager
async def demo_database(
    backend: str,
    folder: Path,
    sqlite_template: Path,
    server: PostgresServer | None,
    postgres_template: str | None,
) -> AsyncIterator[str]:
    """The URL of a new database of ``backend`` holding the demo's data (``build_demo``)."""
    if backend == "sqlite":
        path = folder / "demo.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite+aiosqlite:///{path}"
        await build_demo(url)
        yield url
        return
    if server is None:
        pytest.skip("PostgreSQL unavailable")
    async with scratch_postgres_database(server, postgres_template) as name:
        url = server.url(name)
        await build_demo(url)
        yield url


async def build_demo(url: str) -> None:
    """The demo's live, paper and backtest sessions over its last ``DAYS`` days of candles,
    with one open ledger trade in ``LEDGER_SCOPE`` and an error event in the default scope."""
    async with DatabaseManager(url) as manager:
        await demo._import_sample(manager)
        bars = await demo._session_bars(manager, DAYS)
        await demo._record_session(manager, bars)
        await demo._record_paper(manager, bars)
        await demo._record_backtest(manager, bars)
        last = bars[-1]
        async with manager.scope(LEDGER_SCOPE.bot, LEDGER_SCOPE.mode).session() as journal:
            await journal.ledger.record_order(
                Order(
                    client_order_id="o-1",
                    trade_id=LEDGER_TRADE,
                    symbol=demo.SYMBOL,
                    exchange=demo.EXCHANGE,
                    side="buy",
                    position_side="long",
                    order_type="market",
                    quantity=Decimal("0.02"),
                    placed_at=last.timestamp,
                )
            )
            for number in (1, 2):
                await journal.ledger.record_fill(
                    Fill(
                        exchange_fill_id=f"f-{number}",
                        client_order_id="o-1",
                        symbol=demo.SYMBOL,
                        exchange=demo.EXCHANGE,
                        side="buy",
                        price=last.close + number,
                        quantity=Decimal("0.01"),
                        fee=Decimal("0.012"),
                        filled_at=last.timestamp + timedelta(seconds=number),
                    )
                )
        async with manager.scope().session() as journal:
            await journal.events.log_event(
                "exchange_error", "error", "order rejected: insufficient margin", symbol="BTCUSD"
            )
