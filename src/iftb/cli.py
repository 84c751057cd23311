"""``iftb-db``: the command line of the storage layer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from iftb.config import ConfigError, get_settings
from iftb.data.storage import DatabaseManager, StorageError, migrations

app = typer.Typer(help="Manage the iftb trading database.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DATABASE_URL",
        show_envvar=False,
        help="SQLAlchemy URL; defaults to the settings (DB_* variables or the SQLite file).",
    ),
]


def _url(database_url: str | None) -> str:
    return database_url or get_settings().database.get_async_url()


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run async work; a storage or configuration error exits non-zero with one clear line."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except (StorageError, ConfigError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the schema up to REVISION (default: the latest)."""

    async def work() -> str | None:
        manager = DatabaseManager(_url(database_url), auto_migrate=False)
        try:
            await manager.migrate(revision)
            return await manager.current_revision()
        finally:
            await manager.disconnect()

    current = _run(work)
    console.print(f"schema at revision [bold]{current}[/bold] ({manager_url(database_url)})")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the schema down to REVISION (``base`` removes every table)."""

    async def work() -> str | None:
        manager = DatabaseManager(_url(database_url), auto_migrate=False)
        try:
            await manager.downgrade(revision)
            return await manager.current_revision()
        finally:
            await manager.disconnect()

    current = _run(work)
    console.print(f"schema at revision [bold]{current or 'base'}[/bold]")


@app.command()
def current(database_url: DatabaseUrl = None) -> None:
    """Show the schema revision of the database and the one the code expects."""

    async def work() -> str | None:
        manager = DatabaseManager(_url(database_url), auto_migrate=False)
        try:
            return await manager.current_revision()
        finally:
            await manager.disconnect()

    revision = _run(work)
    head = migrations.head_revision()
    state = "up to date" if revision == head else "behind: run `iftb-db upgrade`"
    console.print(f"database: {revision or 'empty'}   code: {head}   ({state})")


def manager_url(database_url: str | None) -> str:
    """The URL in use, password masked."""
    return DatabaseManager(_url(database_url)).safe_url
