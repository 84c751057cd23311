"""Migration 0006 on a database with history: rows keep their values and join the default scope;
the downgrade refuses to merge scopes, and restores the old invariants when it may run."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from iftb.data.storage import (
    ConflictError,
    DailyPerformance,
    DatabaseManager,
    DuplicateError,
    PositionRepository,
    SystemEventRepository,
    TradeRepository,
)
from iftb.data.storage.migrations import head_revision
from tests.factories import T0, make_position, make_trade

JOURNAL = ("trades", "positions", "daily_performance", "system_events", "llm_analysis_log")
BEFORE = "0005"


async def _rows(manager: DatabaseManager, sql: str) -> list[tuple[object, ...]]:
    async with manager._ensure_engine().connect() as connection:
        return [tuple(row) for row in await connection.execute(text(sql))]


async def test_existing_rows_join_the_default_scope_unchanged(empty_database_url: str) -> None:
    manager = DatabaseManager(empty_database_url, auto_migrate=False)
    try:
        await manager.migrate(BEFORE)
        async with manager._ensure_engine().begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO trades (trade_id, symbol, exchange, side, action, entry_price, "
                    "quantity, realized_pnl, entry_time) VALUES ('old-1', 'BTCUSDT', 'binance', "
                    "'long', 'open', 40000.12345678, 0.5, -1.00000001, :at)"
                ),
                {"at": T0},
            )
            await connection.execute(
                text(
                    "INSERT INTO system_events (event_type, severity, message) "
                    "VALUES ('restart', 'info', 'before scopes')"
                )
            )
        await manager.migrate()
        await manager.connect()
        async with manager.get_session() as session:
            trade = await TradeRepository(session).get_by_trade_id("old-1")
            events = await SystemEventRepository(session).get_recent_events()
            with pytest.raises(DuplicateError):  # the old uniqueness holds within the scope
                await TradeRepository(session).insert(make_trade(trade_id="old-1"))
        assert trade is not None
        assert (trade.bot, trade.mode, trade.run_id) == ("default", "live", None)
        assert (trade.entry_price, trade.realized_pnl) == (
            Decimal("40000.12345678"), Decimal("-1.00000001")
        )  # fmt: skip
        assert [e.message for e in events] == ["before scopes"]
    finally:
        await manager.disconnect()


async def test_the_downgrade_refuses_to_merge_scopes_and_changes_nothing(
    empty_database_url: str,
) -> None:
    manager = DatabaseManager(empty_database_url, auto_migrate=False)
    try:
        await manager.migrate()
        await manager.connect()
        async with manager.get_session() as session:
            await TradeRepository(session).insert(make_trade(trade_id="t1"))
            await PositionRepository(session).update_position(make_position())
        async with manager.scope("trend-1", "paper").session() as journal:
            await journal.trades.insert(make_trade(trade_id="t1"))
            await journal.daily_performance.upsert(DailyPerformance(T0.date(), "binance"))

        with pytest.raises(ConflictError, match="2 journal rows belong to scopes other than"):
            await manager.downgrade(BEFORE)
        assert await manager.current_revision() == head_revision()  # the downgrade rolled back
        assert len(await _rows(manager, "SELECT id FROM trades")) == 2

        await _delete_other_scopes(manager)
        await manager.downgrade(BEFORE)
        assert await manager.current_revision() == BEFORE
        assert await _rows(manager, "SELECT trade_id FROM trades") == [("t1",)]
        with pytest.raises(Exception, match="(?i)unique"):  # the old global key is back
            async with manager._ensure_engine().begin() as connection:
                await connection.execute(text(_copy_of("t1")))
        await manager.migrate()
        assert await manager.current_revision() == head_revision()
    finally:
        await manager.disconnect()


async def _delete_other_scopes(manager: DatabaseManager) -> None:
    async with manager._ensure_engine().begin() as connection:
        for table in JOURNAL:
            await connection.execute(
                text(f"DELETE FROM {table} WHERE bot <> 'default' OR mode <> 'live'")
            )


def _copy_of(trade_id: str) -> str:
    return (
        "INSERT INTO trades (trade_id, symbol, exchange, side, action, entry_price, quantity) "
        f"VALUES ('{trade_id}', 'BTCUSDT', 'binance', 'long', 'open', 1, 1)"
    )
