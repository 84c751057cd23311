"""DatabaseManager: connecting, units of work, clear connection errors, zero-config SQLite."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, insert, select, text

from iftb.config import DatabaseSettings, get_settings
from iftb.data.storage import (
    DatabaseConnectionError,
    DatabaseManager,
    DuplicateError,
    NotConnectedError,
    RetryPolicy,
    SchemaOutOfDateError,
    SystemEventModel,
)
from tests.support.pg_cluster import PostgresServer

EVENT = {"event_type": "restart", "severity": "info", "message": "bot started"}


async def count_events(db: DatabaseManager) -> int:
    async with db.get_session() as session:
        return int(await session.scalar(select(func.count()).select_from(SystemEventModel)) or 0)


async def test_connect_is_idempotent_and_disconnect_is_safe_twice(database_url: str) -> None:
    manager = DatabaseManager(database_url)
    await manager.connect()
    await manager.connect()
    assert manager.is_connected
    await manager.disconnect()
    await manager.disconnect()
    assert not manager.is_connected


async def test_async_with_connects_and_disconnects(database_url: str) -> None:
    async with DatabaseManager(database_url) as manager:
        assert manager.is_connected
    assert not manager.is_connected


async def test_sessions_before_connect_are_refused(database_url: str) -> None:
    with pytest.raises(NotConnectedError, match="connect"):
        async with DatabaseManager(database_url).get_session():
            pass


async def test_a_unit_of_work_commits_on_success(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await session.execute(insert(SystemEventModel).values(EVENT))
    assert await count_events(db) == 1


async def test_a_failing_unit_of_work_rolls_back_and_reraises_the_callers_error(
    db: DatabaseManager,
) -> None:
    class StrategyError(Exception):
        pass

    with pytest.raises(StrategyError):
        async with db.get_session() as session:
            await session.execute(insert(SystemEventModel).values(EVENT))
            raise StrategyError
    assert await count_events(db) == 0


async def test_database_errors_surface_as_storage_errors(db: DatabaseManager) -> None:
    from iftb.data.storage import TradeModel

    row = {
        "trade_id": "dup",
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "action": "open",
        "entry_price": 1,
        "quantity": 1,
    }
    with pytest.raises(DuplicateError, match="trade_id|trades"):
        async with db.get_session() as session:
            await session.execute(insert(TradeModel).values(row))
            await session.execute(insert(TradeModel).values(row))


async def test_repr_masks_the_password() -> None:
    manager = DatabaseManager("postgresql://bot:hunter2@db.example:5432/iftb")
    assert "hunter2" not in repr(manager)
    assert "***" in repr(manager)


@pytest.mark.postgres_only
async def test_refused_connection_names_host_port_and_database_not_the_password(
    backend: str,
) -> None:
    manager = DatabaseManager("postgresql://bot:hunter2@127.0.0.1:9/iftb", connect_timeout=3)
    with pytest.raises(DatabaseConnectionError) as raised:
        await manager.connect()
    message = str(raised.value)
    assert "127.0.0.1:9" in message and "'iftb'" in message and "'bot'" in message
    assert "hunter2" not in message
    assert not manager.is_connected


@pytest.mark.postgres_only
async def test_wrong_password_is_one_clear_error_without_the_password(
    backend: str, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url().replace(postgres_server.password, "wrong-password-xyz")
    with pytest.raises(DatabaseConnectionError, match="password authentication failed") as raised:
        await DatabaseManager(url, connect_timeout=5).connect()
    assert "wrong-password-xyz" not in str(raised.value)
    assert postgres_server.password not in str(raised.value)


@pytest.mark.postgres_only
async def test_an_unmigrated_postgresql_database_says_to_run_upgrade(
    backend: str, postgres_server: PostgresServer
) -> None:
    admin = await asyncpg.connect(postgres_server.url(driver=""))
    await admin.execute('DROP DATABASE IF EXISTS "iftb_unmigrated"')
    await admin.execute('CREATE DATABASE "iftb_unmigrated"')
    try:
        manager = DatabaseManager(postgres_server.url("iftb_unmigrated"))
        with pytest.raises(SchemaOutOfDateError, match="iftb-db upgrade"):
            await manager.connect()
        assert not manager.is_connected
        await manager.migrate()
        await manager.connect()
        await manager.disconnect()
    finally:
        await admin.execute('DROP DATABASE IF EXISTS "iftb_unmigrated" WITH (FORCE)')
        await admin.close()


@pytest.mark.postgres_only
async def test_postgresql_pool_pings_and_recycles(db: DatabaseManager) -> None:
    pool = db.engine.pool
    assert pool._pre_ping  # type: ignore[attr-defined]
    assert pool._recycle == 1800  # type: ignore[attr-defined]


@pytest.mark.sqlite_only
async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(
    db: DatabaseManager,
) -> None:
    async with db.engine.connect() as connection:
        pragmas = {
            name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}


async def test_zero_configuration_opens_and_migrates_a_sqlite_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DATABASE_URL", "DB_HOST", "DB_SQLITE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        async with DatabaseManager(settings.database.get_async_url()) as manager:
            assert await count_events(manager) == 0
        assert (tmp_path / "iftb" / "iftb.db").is_file()
    finally:
        get_settings.cache_clear()


async def test_from_settings_takes_url_pool_and_retry_policy(tmp_path: Path) -> None:
    settings = DatabaseSettings(
        sqlite_path=tmp_path / "s.db", retry_attempts=7, retry_initial_delay=0.5, pool_size=3
    )
    manager = DatabaseManager.from_settings(settings, echo=False)
    assert manager.retry_policy == RetryPolicy(attempts=7, initial_delay=0.5, max_delay=5.0)
    assert manager.safe_url.endswith("s.db")
    async with manager, manager.get_session() as session:
        assert await session.scalar(text("SELECT 1")) == 1


def test_a_retry_policy_is_bounded_and_sane() -> None:
    assert len(list(RetryPolicy(attempts=4, initial_delay=1, max_delay=2).delays())) == 3
    with pytest.raises(ValueError, match="invalid retry policy"):
        RetryPolicy(attempts=0)


@pytest.mark.postgres_only
async def test_postgresql_sessions_run_in_utc_without_jit_compilation(db: DatabaseManager) -> None:
    """JIT compiled list_scopes for 1.6 s to run it in 30 ms (docs/performance.md)."""
    async with db.get_session(read_only=True) as session:
        settings = (await session.execute(text("SELECT current_setting('jit'), now()"))).one()
    assert settings[0] == "off"
    assert settings[1].utcoffset().total_seconds() == 0
