"""Schema revisions: upgrades started together take turns, a database migrated by a newer iftb
says so (and is left alone), and ``iftb-db downgrade -1`` works as its help says."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from typer.testing import CliRunner

from iftb.cli import app
from iftb.data.storage import DatabaseManager, SchemaTooNewError
from iftb.data.storage.migrations import alembic_config, head_revision

HEAD = head_revision()
BELOW_HEAD = ScriptDirectory.from_config(alembic_config()).get_revision(HEAD).down_revision


async def stamp(database_url: str, revision: str) -> None:
    """Mark the database as migrated to ``revision`` (as a newer iftb would have)."""
    async with DatabaseManager(database_url) as db, db.get_session() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


async def test_three_iftb_db_upgrades_started_together_on_an_empty_database_all_succeed(
    empty_database_url: str,
) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from iftb.cli import app; app()",
            "upgrade",
            "--database-url",
            empty_database_url,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [(await process.communicate())[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert all(f"schema at revision {HEAD}" in output for output in outputs)


async def test_three_upgrades_started_together_from_one_process_all_succeed(
    empty_database_url: str,
) -> None:
    managers = [DatabaseManager(empty_database_url, auto_migrate=False) for _ in range(3)]
    try:
        await asyncio.gather(*(manager.migrate() for manager in managers))
        revisions = {await manager.current_revision() for manager in managers}
    finally:
        for manager in managers:
            await manager.disconnect()
    assert revisions == {HEAD}
    async with DatabaseManager(empty_database_url) as db:  # the schema checks out at head
        assert db.is_connected


async def test_a_database_newer_than_the_code_says_upgrade_iftb(database_url: str) -> None:
    await stamp(database_url, "zzzz")
    message = f"database is at revision zzzz, newer than this code (head {HEAD}): upgrade iftb"
    manager = DatabaseManager(database_url)
    with pytest.raises(SchemaTooNewError) as raised:
        await manager.connect()
    assert str(raised.value) == message
    assert not manager.is_connected


async def test_upgrading_a_database_newer_than_the_code_is_refused_and_changes_nothing(
    database_url: str,
) -> None:
    await stamp(database_url, "zzzz")
    manager = DatabaseManager(database_url, auto_migrate=False)
    try:
        with pytest.raises(SchemaTooNewError, match="upgrade iftb"):
            await manager.migrate()
        assert await manager.current_revision() == "zzzz"
    finally:
        await manager.disconnect()


def test_iftb_db_current_says_a_newer_database_needs_a_newer_iftb(database_url: str) -> None:
    asyncio.run(stamp(database_url, "zzzz"))
    result = CliRunner().invoke(app, ["current", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert "newer than this code: upgrade iftb" in result.output
    assert "run `iftb-db upgrade`" not in result.output


def test_iftb_db_downgrade_minus_one_goes_one_revision_down(database_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["downgrade", "-1", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert f"schema at revision {BELOW_HEAD} " in result.output
    result = runner.invoke(app, ["upgrade", "--database-url", database_url])
    assert result.exit_code == 0 and HEAD in result.output


def test_the_downgrade_help_shows_minus_one() -> None:
    result = CliRunner().invoke(app, ["downgrade", "--help"])
    assert result.exit_code == 0
    assert "-1 (one step down)" in result.output
