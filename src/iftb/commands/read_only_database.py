"""The dashboard's database, opened to read only: an existing SQLite file opened read-only
(never created, never migrated), or PostgreSQL checked, with a warning for a role that can write.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from iftb.commands.common import err_console, manager_for
from iftb.config import get_settings, to_async_url
from iftb.data.storage import DatabaseManager, ValidationError

_WRITABLE = text(
    "SELECT count(*) FROM pg_catalog.pg_class c"
    " WHERE c.relnamespace = 'public'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p')"
    " AND pg_catalog.has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')"
)


def read_only_manager(database_url: str | None) -> DatabaseManager:
    """A manager that never migrates; on SQLite, of an existing file opened read-only (a
    missing file is a ``ValidationError`` naming it, not a new empty database)."""
    url = to_async_url(database_url or get_settings().database.get_async_url())
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or url.database == ":memory:" or not path.is_file():
            raise ValidationError(
                f"no database file at {path}: the dashboard reads an existing database and "
                "never creates one (check --database-url or DB_SQLITE_PATH; `iftb-db demo` "
                "or `iftb-db upgrade` makes one)"
            )
        uri = f"sqlite+aiosqlite:///file:{path.resolve()}?mode=ro&uri=true"
        return manager_for(uri, auto_migrate=False)
    return manager_for(url.render_as_string(hide_password=False), auto_migrate=False)


async def check_read_only(manager: DatabaseManager) -> None:
    """Connect (the schema must be this code's: older or newer is a clear error) and warn when
    the role could write."""
    async with manager:
        if manager.is_sqlite:
            return
        async with manager.get_session(read_only=True) as session:
            writable = int((await session.execute(_WRITABLE)).scalar_one())
    if writable:
        err_console.print(
            f"warning: this role can write {writable} tables; the dashboard only reads, so "
            "serve it as a read-only role (iftb_reader, docs/security.md)",
            highlight=False,
        )
