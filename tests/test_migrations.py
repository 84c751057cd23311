"""Alembic migrations: reversible, equal to the models, and equal to the reference SQL file."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.engine import Connection, make_url

from iftb.data.storage import Base, DatabaseManager, TradeModel
from iftb.data.storage.migrations import head_revision, object_filter
from tests.conftest import scratch_postgres_database
from tests.support.pg_cluster import PostgresServer, pg_dump_schema, run_psql

ROOT = Path(__file__).resolve().parents[1]
# One reference file per revision, applied in revision order (001_..., 002_..., ...).
REFERENCE_SQL = sorted((ROOT / "migrations").glob("[0-9][0-9][0-9]_*.sql"))
PARTITION = re.compile(r"^ohlcv_p\d{8}$")
TABLES = {"ohlcv", "trades", "positions", "llm_analysis_log", "system_events", "daily_performance"}
TABLES |= {"backtest_runs", "bot_state", "pair_locks", "orders", "fills", "funding_payments"}
TABLES |= {"funding_rates", "candle_series", "candle_gaps", "journal_scopes"}
VIEWS = {"v_active_positions", "v_recent_trades"}
CITUS_VIEWS = {"citus_tables", "citus_schemas"}
"""Made in ``public`` by the Citus extension itself (the Citus tier): not the schema's."""


def schema_objects(connection: Connection) -> tuple[set[str], set[str]]:
    inspector = inspect(connection)
    tables = {name for name in inspector.get_table_names() if not PARTITION.match(name)}
    return tables - {"alembic_version"}, set(inspector.get_view_names()) - CITUS_VIEWS


def model_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "include_object": object_filter(connection.dialect.name)},
    )
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_downgrade_upgrade_round_trips(empty_database_url: str) -> None:
    manager = DatabaseManager(empty_database_url, auto_migrate=False)
    try:
        await manager.migrate()
        async with manager._ensure_engine().connect() as connection:
            assert await connection.run_sync(schema_objects) == (TABLES, VIEWS)
        await manager.downgrade("base")
        assert await manager.current_revision() is None
        async with manager._ensure_engine().connect() as connection:
            assert await connection.run_sync(schema_objects) == (set(), set())
        await manager.migrate()
        assert await manager.current_revision() == head_revision()
    finally:
        await manager.disconnect()


async def test_autogenerate_finds_no_difference_from_the_models(db: DatabaseManager) -> None:
    async with db.engine.connect() as connection:
        assert await connection.run_sync(model_differences) == []


async def test_update_timestamps_move_on_every_update(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await session.execute(
            insert(TradeModel).values(
                trade_id="t",
                symbol="BTCUSDT",
                exchange="binance",
                side="long",
                action="open",
                entry_price=1,
                quantity=1,
            )
        )
        await session.execute(
            update(TradeModel).values(updated_at=datetime(2001, 1, 1, tzinfo=UTC))
        )
    async with db.get_session() as session:
        before = await session.scalar(select(TradeModel.updated_at))
        await session.execute(update(TradeModel).values(action="close"))
    async with db.get_session() as session:
        after = await session.scalar(select(TradeModel.updated_at))
    assert before is not None and after is not None
    assert after > before
    assert after.year > 2001


async def test_the_views_answer(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        for view in sorted(VIEWS):
            await session.execute(text(f"SELECT * FROM {view}"))


@pytest.mark.postgres_only
async def test_reference_sql_builds_the_same_schema_as_the_migrations(
    backend: str, postgres_server: PostgresServer, empty_database_url: str
) -> None:
    # Both built now, side by side: the partitions made "ahead of today" are then the same
    # months (a template migrated at the session's start could differ past a month's end).
    migrated = DatabaseManager(empty_database_url)
    await migrated.migrate()
    await migrated.disconnect()
    migrated_name = make_url(empty_database_url).database
    async with scratch_postgres_database(postgres_server) as from_sql:
        for reference in REFERENCE_SQL:
            run_psql(postgres_server, from_sql, reference)
        expected = _normalised(pg_dump_schema(postgres_server, migrated_name))
        actual = _normalised(pg_dump_schema(postgres_server, from_sql))
    assert actual == expected


@pytest.mark.postgres_only
@pytest.mark.parametrize("revision", ["0004", "0005"])
async def test_downgrading_a_partition_function_revision_restores_the_one_before_exactly(
    postgres_server: PostgresServer, empty_database_url: str, revision: str
) -> None:
    database = empty_database_url.rsplit("/", 1)[1]
    before_revision = f"{int(revision) - 1:04d}"
    manager = DatabaseManager(empty_database_url, auto_migrate=False)
    try:
        await manager.migrate(before_revision)
        before = _normalised(pg_dump_schema(postgres_server, database))
        await manager.migrate(revision)
        assert _normalised(pg_dump_schema(postgres_server, database)) != before
        await manager.downgrade(before_revision)
        assert _normalised(pg_dump_schema(postgres_server, database)) == before
    finally:
        await manager.disconnect()


@pytest.mark.postgres_only
async def test_migration_0004_lets_whoever_could_create_partitions_still_do_so(
    postgres_server: PostgresServer, empty_database_url: str
) -> None:
    """EXECUTE on the replaced ensure function moves to its successor (and back on downgrade)
    whoever migrates, not only where the owner's default privileges grant it."""
    old = "iftb_ensure_ohlcv_partitions(timestamptz, timestamptz)"
    new = "iftb_ensure_ohlcv_partitions(timestamptz[])"
    may_run = text("SELECT has_function_privilege('iftb_probe', :function, 'EXECUTE')")
    manager = DatabaseManager(empty_database_url, auto_migrate=False)
    try:
        await manager.migrate("0003")
        async with manager._ensure_engine().begin() as connection:
            await connection.execute(text("DROP ROLE IF EXISTS iftb_probe"))
            await connection.execute(text("CREATE ROLE iftb_probe NOLOGIN"))
            await connection.execute(text(f"GRANT EXECUTE ON FUNCTION {old} TO iftb_probe"))
        await manager.migrate("0004")
        async with manager._ensure_engine().connect() as connection:
            assert await connection.scalar(may_run, {"function": new})
        await manager.downgrade("0003")
        async with manager._ensure_engine().connect() as connection:
            assert await connection.scalar(may_run, {"function": old})
        await manager.downgrade("base")
    finally:
        async with manager._ensure_engine().begin() as connection:
            await connection.execute(text("DROP OWNED BY iftb_probe"))
            await connection.execute(text("DROP ROLE iftb_probe"))
        await manager.disconnect()


def test_no_privileges_are_granted_to_public() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.sql", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"GRANT\s[^;]*\bTO\s+PUBLIC", re.IGNORECASE)
    offenders = [name for name in tracked if pattern.search((ROOT / name).read_text())]
    assert offenders == []


def _normalised(dump: str) -> str:
    """The dump without the Alembic bookkeeping table and pg_dump's comment lines."""
    dump = re.sub(r"CREATE TABLE public\.alembic_version .*?;\n", "", dump, flags=re.S)
    dump = re.sub(r"ALTER TABLE ONLY public\.alembic_version\s.*?;\n", "", dump, flags=re.S)
    lines = [
        line
        for line in dump.splitlines()
        if line and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]
    return "\n".join(
        line
        for line in lines
        if not line.startswith("SET ") and "pg_catalog.set_config" not in line
    )
