"""Alembic environment: online against a connection handed in by the caller, or a URL from
settings (async engine), and offline (``--sql``) to render the reference DDL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from iftb.data.storage.migrations import SCHEMA_LOCK, object_filter
from iftb.data.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from iftb.config import get_settings

    return get_settings().database.get_async_url()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=object_filter(connection.dialect.name),
        transaction_per_migration=True,
    )


def _serialise(connection: Connection) -> None:
    """On PostgreSQL, wait for any other migration of this database, however long it runs (a
    data migration may also outlast the bot's statement_timeout: it is lifted for this one).
    Upgrades that start together queue here, so the later ones find the schema migrated."""
    if connection.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already makes migrations take turns
    lock_timeout = connection.scalar(text("SHOW lock_timeout"))
    connection.execute(text("SET LOCAL statement_timeout = 0"))
    connection.execute(text("SET LOCAL lock_timeout = 0"))
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
    connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": lock_timeout}
    )
    connection.execute(text(_CITUS_ONE_CONNECTION))


_CITUS_ONE_CONNECTION = (
    "SELECT set_config('citus.multi_shard_modify_mode', 'sequential', true)"
    " FROM pg_catalog.pg_extension WHERE extname = 'citus'"
)
"""On a Citus coordinator, a migration reaches each worker over one connection: DDL on a
distributed table after a parallel multi-shard command in the same transaction (or a function
created after one) would otherwise fail, and a migration is DDL after DDL."""


def run_migrations(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        _serialise(connection)
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif config.attributes.get("connection") is not None:
    run_migrations(config.attributes["connection"])
else:
    asyncio.run(run_async_migrations())
