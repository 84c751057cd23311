"""Alembic migrations, shipped inside the package so an installed wheel can migrate.

These helpers run Alembic on a connection the caller already holds (``run_sync`` from an async
connection), which is how ``DatabaseManager.migrate()`` and the CLI share one code path.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).parent
SCHEMA_LOCK = 0x69667462
"""pg_advisory_xact_lock key ("iftb" in ASCII) taken by every change of the schema's shape
(migrations, ``distribute``): started together, they queue instead of racing."""
_VIEW_OR_PARTITION = re.compile(r"^(v_\w+|ohlcv_p\d{8})$")


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for the packaged scripts, bound to a connection or a URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def object_filter(dialect: str) -> Callable[[object, str | None, str, bool, object], bool]:
    """What autogenerate compares on ``dialect``: not the views and candle partitions (the
    migrations own them), and not objects the models create on other dialects only (GIN)."""

    def include(obj: object, name: str | None, kind: str, reflected: bool, other: object) -> bool:
        if kind == "table" and name is not None and _VIEW_OR_PARTITION.match(name):
            return False
        only_on = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return only_on is None or only_on == dialect

    return include


_in_process: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def in_process_lock() -> asyncio.Lock:
    """Held around every Alembic command: Alembic keeps its running context in module globals,
    so two commands interleaving in one process (two tasks) would run in each other's context.
    Other processes are kept apart by the database itself (see ``env.py``)."""
    return _in_process.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def is_known_revision(revision: str) -> bool:
    """Whether this code has a migration script for ``revision`` (a newer iftb may not)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
