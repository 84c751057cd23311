"""The demo's data (``iftb.commands.demo``) plus what the demo leaves out — an open position
built from a ledger's order and fill, an error event — for the dashboard's tests."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from iftb.commands import demo
from iftb.data.storage import DatabaseManager, Fill, Order, Scope

TOKEN = "test-token-0123456789abcdef"
LEDGER_SCOPE = Scope("demo", "live")
LEDGER_TRADE = "ledger-1"
DAYS = 5


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
