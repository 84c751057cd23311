"""Schema and health: ``upgrade``, ``downgrade``, ``current``, ``doctor``, ``distribute``."""

from __future__ import annotations

from typing import Annotated

import typer

from iftb.commands.common import DatabaseUrl, console, folding_table, manager_for, run
from iftb.data.storage import DatabaseManager
from iftb.data.storage.diagnostics import Diagnosis
from iftb.data.storage.distribution import Distribution

app = typer.Typer()


def _manager(database_url: str | None) -> DatabaseManager:
    return manager_for(database_url, auto_migrate=False)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the schema up to REVISION (default: the latest)."""
    manager = _manager(database_url)

    async def work() -> str | None:
        try:
            await manager.migrate(revision)
            return await manager.current_revision()
        finally:
            await manager.disconnect()

    current = run(work)
    console.print(f"schema at revision [bold]{current}[/bold] ({manager.safe_url})")


# "-1" (one step down, as Alembic writes it) looks like an option to the parser: let it through.
@app.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision: -1 (one step down), -2, a revision id, or base.")
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the schema down to REVISION (``base`` removes every table)."""
    manager = _manager(database_url)

    async def work() -> str | None:
        try:
            await manager.downgrade(revision)
            return await manager.current_revision()
        finally:
            await manager.disconnect()

    current = run(work)
    console.print(f"schema at revision [bold]{current or 'base'}[/bold] ({manager.safe_url})")


@app.command()
def distribute(
    shards: Annotated[
        int, typer.Option(min=1, max=1024, help="Shards of the candle table (fixed once made).")
    ] = 32,
    ahead: Annotated[
        int, typer.Option(min=0, max=120, help="Create candle partitions this many months ahead.")
    ] = 3,
    database_url: DatabaseUrl = None,
) -> None:
    """Citus: distribute the candles by symbol over the workers (as a superuser, after upgrade).

    Safe to run again: a distributed table is left as it is, and missing partitions are made.
    """
    manager = _manager(database_url)

    async def work() -> Distribution:
        try:
            return await manager.distribute(shard_count=shards, months_ahead=ahead)
        finally:
            await manager.disconnect()

    done = run(work)
    action = "distributed" if done.distributed_now else "already distributed"
    console.print(
        f"candles {action} by symbol: {done.shard_count} shards over {done.workers} workers "
        f"(Citus {done.citus_version}); {done.partitions_created} new partitions "
        f"({manager.safe_url})"
    )


@app.command()
def current(database_url: DatabaseUrl = None) -> None:
    """Show the schema revision of the database and the one the code expects."""
    report = _diagnose(database_url)
    state = report.schema_state
    console.print(f"database: {report.revision or 'empty'}   code: {report.head}   ({state})")


@app.command()
def doctor(database_url: DatabaseUrl = None) -> None:
    """Check the connection; show server version, schema revision, settings and table sizes."""
    manager = _manager(database_url)
    report = _diagnose(database_url)
    console.print(f"[green]connected[/green] to {manager.safe_url}")
    console.print(f"server: {report.server_version}")
    color = "green" if report.schema_current else "red"
    state = f"[{color}]{report.schema_state}[/{color}]"
    console.print(f"schema: {report.revision or 'empty'} (code: {report.head}) {state}")
    if report.size_bytes is not None:
        console.print(f"size: {report.size_bytes / 1_048_576:,.1f} MiB")
    for name, size in report.distributed_bytes.items():
        console.print(f"distributed: {name} {size / 1_048_576:,.1f} MiB on the Citus workers")
    settings = folding_table("setting", "value", title="settings")
    for name, value in report.settings.items():
        settings.add_row(name, value)
    console.print(settings)
    estimate = "" if report.backend == "sqlite" else " (estimated)"
    tables = folding_table("table", f"rows{estimate}", title="tables")
    for name, rows in report.tables.items():
        tables.add_row(name, "missing" if rows is None else f"{rows:,}")
    console.print(tables)


def _diagnose(database_url: str | None) -> Diagnosis:
    manager = _manager(database_url)

    async def work() -> Diagnosis:
        try:
            return await manager.diagnose()
        finally:
            await manager.disconnect()

    return run(work)
