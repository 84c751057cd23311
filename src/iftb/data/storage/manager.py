"""DatabaseManager: the engine, its connection pool, sessions, and schema migrations.

One manager per process and database. It owns the engine; callers own the unit of work
(``get_session()``), and repositories only use the session they are given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from iftb.config import DatabaseSettings, get_settings, to_async_url
from iftb.data.storage import migrations
from iftb.data.storage.diagnostics import Diagnosis, diagnose
from iftb.data.storage.distribution import Distribution, distribute
from iftb.data.storage.engine import BUSY_WAIT, Timeouts, create_engine, read_only
from iftb.data.storage.enums import Mode
from iftb.data.storage.errors import (
    ClusterError,
    DatabaseConnectionError,
    NotConnectedError,
    QueryTimeoutError,
    SchemaOutOfDateError,
    SchemaTooNewError,
    StorageError,
    translate,
    unreachable,
)
from iftb.data.storage.private_files import create_private_file
from iftb.data.storage.retry import RetryPolicy, retry_transient
from iftb.data.storage.scoped_database import ScopedDatabase
from iftb.data.storage.scopes import DEFAULT_BOT, Scope
from iftb.data.storage.units import commit_shielded, rollback_quietly
from iftb.utils import get_logger

log = get_logger(__name__)

T = TypeVar("T")


class DatabaseManager:
    """Connects to SQLite (aiosqlite) or PostgreSQL (asyncpg) and hands out sessions.

    Args:
        database_url: A SQLAlchemy async URL, e.g. from ``settings.database.get_async_url()``.
        pool_size: Connections kept open (PostgreSQL and SQLite files; ``:memory:`` has one).
        max_overflow: Extra connections allowed under load.
        echo: Log every SQL statement (parameters are never logged with secrets).
        pool_recycle: Seconds after which a pooled connection is replaced (PostgreSQL).
        connect_timeout: Seconds ``connect()`` waits for the server (or a locked SQLite file).
        auto_migrate: Run migrations on ``connect()``. Defaults to True for SQLite (zero setup)
            and False for PostgreSQL, where the schema is owned by ``iftb-db upgrade``.
        retry_policy: How ``run_idempotent`` retries work that lost its connection.
        timeouts: Statement, lock, idle-transaction, busy and pool limits (``Timeouts()``).
    """

    def __init__(
        self,
        database_url: str | URL,
        pool_size: int = 5,
        max_overflow: int = 10,
        echo: bool = False,
        *,
        pool_recycle: int = 1800,
        connect_timeout: float = 10.0,
        auto_migrate: bool | None = None,
        retry_policy: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self._url = to_async_url(database_url)
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._echo = echo
        self._pool_recycle = pool_recycle
        self._connect_timeout = connect_timeout
        self._auto_migrate = self.is_sqlite if auto_migrate is None else auto_migrate
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._readers: async_sessionmaker[AsyncSession] | None = None
        self._connected = False
        self._lock = asyncio.Lock()
        self._before_disconnect: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    def from_settings(
        cls, settings: DatabaseSettings | None = None, *, url: str | None = None, **options: Any
    ) -> Self:
        """A manager configured by ``DatabaseSettings`` (URL, pool, retry policy, timeouts);
        ``url``, when given, replaces the configured database (e.g. a command's option)."""
        settings = settings or get_settings().database
        defaults: dict[str, Any] = {
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "retry_policy": RetryPolicy(
                settings.retry_attempts, settings.retry_initial_delay, settings.retry_max_delay
            ),
            "timeouts": Timeouts(
                statement=settings.statement_timeout,
                lock=settings.lock_timeout,
                idle_in_transaction=settings.idle_in_transaction_timeout,
                busy=settings.busy_timeout,
                pool=settings.pool_timeout,
            ),
        }
        return cls(url or settings.get_async_url(), **(defaults | options))

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"DatabaseManager({self.safe_url!r}, {state})"

    @property
    def safe_url(self) -> str:
        """The URL with the password masked."""
        return self._url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._url.get_backend_name()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def engine(self) -> AsyncEngine:
        """The engine; raises NotConnectedError before ``connect()``."""
        if self._engine is None or not self._connected:
            raise NotConnectedError("DatabaseManager is not connected; call await connect() first")
        return self._engine

    async def connect(self) -> None:
        """Open the pool, check the server answers and the schema is current. Idempotent."""
        async with self._lock:
            if self._connected:
                return
            engine = self._ensure_engine()
            # Every wait of connect(), a locked SQLite file's included, ends by connect_timeout.
            bounded = engine.execution_options(**{BUSY_WAIT: self._connect_timeout})
            try:
                await self._ping(read_only(bounded))
                await self._check_schema(bounded)
            except BaseException:
                await self._dispose()
                raise
            self._connected = True
            log.info("database connected", url=self.safe_url)

    def on_disconnect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` once at the next ``disconnect()``, while the pool is still open (the
        logging bridge flushes its queue this way)."""
        if hook not in self._before_disconnect:
            self._before_disconnect.append(hook)

    async def disconnect(self) -> None:
        """Run the shutdown hooks, then close every pooled connection. Safe to call twice."""
        hooks, self._before_disconnect = self._before_disconnect, []
        for hook in hooks:
            try:
                await hook()
            except Exception as exc:  # closing the pool matters more than one hook
                log.warning("shutdown hook failed", hook=repr(hook), error=type(exc).__name__)
        async with self._lock:
            await self._dispose()
            if self._connected:
                log.info("database disconnected", url=self.safe_url)
            self._connected = False

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.disconnect()

    @asynccontextmanager
    async def get_session(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back and re-raises on error.

        Database errors surface as ``StorageError`` subclasses; any other exception raised in
        the block is re-raised unchanged after the rollback. A cancellation (``asyncio.timeout``)
        that arrives once the block has finished waits for the commit, then is re-raised: the
        work is committed exactly when the block ran to its end (see docs/reliability.md).

        Args:
            read_only: The unit only reads: on SQLite it never takes the write lock (it neither
                waits for a writer nor blocks one); a write in it raises ``ReadOnlyError``.
        """
        sessions = self._readers if read_only else self._sessions
        if sessions is None or not self._connected:
            raise NotConnectedError("DatabaseManager is not connected; call await connect() first")
        session = sessions()
        try:
            yield session
            await commit_shielded(session)
        except BaseException as exc:
            await rollback_quietly(session)
            error = self._error_of(exc)
            if error is exc:
                raise
            raise error from (exc.__cause__ if isinstance(exc, StorageError) else exc)
        finally:
            await session.close()

    async def run_idempotent(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        operation: str | None = None,
        read_only: bool = False,
    ) -> T:
        """Run ``work(session)`` in its own unit of work, retried per ``retry_policy`` when the
        connection is lost, a statement, lock or busy timeout hit, or the server asks for a
        retry — each attempt rolled back whole. ``read_only`` as for ``get_session``.

        Only for work that is safe to repeat: reads and upserts. Never for plain inserts: if a
        commit reached the server before its connection died, a retry would write twice.
        """

        async def attempt() -> T:
            async with self.get_session(read_only=read_only) as session:
                return await work(session)

        name = operation or str(getattr(work, "__qualname__", "work"))
        return await retry_transient(attempt, self.retry_policy, operation=name)

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (Alembic). Works before ``connect()`` too."""
        async with self._maintenance_engine() as engine:
            await self._upgrade(engine, revision)

    async def downgrade(self, revision: str) -> None:
        """Downgrade the schema to ``revision`` (``"base"`` drops every table)."""
        try:
            async with (
                self._maintenance_engine() as engine,
                migrations.in_process_lock(),
                engine.begin() as connection,
            ):
                await connection.run_sync(migrations.downgrade, revision)
        except Exception as exc:
            raise translate(exc) from exc
        log.info("schema downgraded", url=self.safe_url, revision=revision)

    def scope(
        self, bot: str = DEFAULT_BOT, mode: str = Mode.LIVE, run_id: int | None = None
    ) -> ScopedDatabase:
        """A handle whose units of work read and write only this scope (``Scope``); the
        manager's own sessions and repositories built without a scope use the default one."""
        return ScopedDatabase(self, Scope(bot, mode, run_id))

    async def distribute(self, shard_count: int = 32, months_ahead: int = 3) -> Distribution:
        """Move the candles onto the Citus cluster this database belongs to (``iftb-db
        distribute``): run as a superuser on the coordinator, at the schema head."""
        if self.is_sqlite:
            raise ClusterError("SQLite cannot be distributed: Citus is a PostgreSQL extension")
        try:
            async with migrations.in_process_lock(), self._maintenance_engine() as engine:
                done = await distribute(engine, shard_count, months_ahead)
        except StorageError:
            raise
        except Exception as exc:
            raise self._storage_error(exc) from exc
        log.info("candles distributed", url=self.safe_url, shards=done.shard_count)
        return done

    async def current_revision(self) -> str | None:
        """The schema revision stored in the database, or None for an empty database."""
        engine = read_only(self._ensure_engine())
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(migrations.current_revision)
        except Exception as exc:
            raise self._connection_error(exc) from exc

    async def diagnose(self) -> Diagnosis:
        """Server version, schema revision, settings and table sizes; works on a database whose
        schema is behind or empty (``iftb-db doctor``)."""
        engine = self._ensure_engine()
        settings = (
            {}
            if self.is_sqlite
            else {
                "pool_size": str(self._pool_size),
                "max_overflow": str(self._max_overflow),
                "pool_recycle": f"{self._pool_recycle}s",
                "pool_pre_ping": "on",
                "pool_timeout": f"{self.timeouts.pool:g}s",
            }
        )
        try:
            async with read_only(engine).connect() as connection:
                return await diagnose(connection, settings)
        except Exception as exc:
            raise self._storage_error(exc) from exc

    # --- internals -------------------------------------------------------------------------

    def _ensure_engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self._create_engine()
            self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
            self._readers = async_sessionmaker(read_only(self._engine), expire_on_commit=False)
        return self._engine

    @asynccontextmanager
    async def _maintenance_engine(self) -> AsyncIterator[AsyncEngine]:
        """The engine for the schema's maintenance, which lifts the statement limit (a migration
        or a distribution may run long): on PostgreSQL one of its own without the client's
        bound, disposed after; on SQLite (no such bound) the manager's own."""
        if self.is_sqlite:
            yield self._ensure_engine()
            return
        engine = self._create_engine(client_bound=False)
        try:
            yield engine
        finally:
            await engine.dispose()

    def _create_engine(self, *, client_bound: bool = True) -> AsyncEngine:
        if self.is_sqlite:
            database = self._url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                create_private_file(Path(database).expanduser())
        return create_engine(
            self._url,
            echo=self._echo,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            pool_recycle=self._pool_recycle,
            connect_timeout=self._connect_timeout,
            timeouts=self.timeouts,
            client_bound=client_bound,
        )

    async def _ping(self, engine: AsyncEngine) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout + 1):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:
            error = self._locked_at_connect(exc)
            raise error or self._connection_error(exc) from exc

    async def _upgrade(self, engine: AsyncEngine, revision: str = "head") -> None:
        try:
            async with migrations.in_process_lock(), engine.begin() as connection:
                await self._refuse_unknown_revision(connection)
                await connection.run_sync(migrations.upgrade, revision)
        except StorageError:
            raise
        except Exception as exc:
            raise self._locked_at_connect(exc) or self._storage_error(exc) from exc
        log.info("schema migrated", url=self.safe_url, revision=revision)

    async def _check_schema(self, engine: AsyncEngine) -> None:
        """Migrate when allowed and behind (only then: migrating takes the write lock, and a
        restart beside a busy SQLite writer must not wait for it); then insist on the head."""
        head = migrations.head_revision()
        current = await self._stored_revision(read_only(engine))
        if self._auto_migrate and current != head:
            async with self._maintenance_engine() as maintenance:
                await self._upgrade(maintenance)
            current = await self._stored_revision(read_only(engine))
        if current != head:
            raise SchemaOutOfDateError(
                f"database schema is at revision {current or 'none (empty database)'}, "
                f"the code needs {head}: run `iftb-db upgrade`"
            )

    async def _stored_revision(self, engine: AsyncEngine) -> str | None:
        try:
            async with engine.connect() as connection:
                await self._refuse_unknown_revision(connection)
                return await connection.run_sync(migrations.current_revision)
        except StorageError:
            raise
        except Exception as exc:
            raise self._locked_at_connect(exc) or self._storage_error(exc) from exc

    async def _refuse_unknown_revision(self, connection: AsyncConnection) -> None:
        """A database migrated by a newer iftb cannot be upgraded (or used) by this one."""
        current = await connection.run_sync(migrations.current_revision)
        if current is not None and not migrations.is_known_revision(current):
            raise SchemaTooNewError(
                f"database is at revision {current}, newer than this code "
                f"(head {migrations.head_revision()}): upgrade iftb"
            )

    def _locked_at_connect(self, exc: Exception) -> QueryTimeoutError | None:
        """A SQLite file locked past ``connect_timeout``: a lock, not "cannot connect"."""
        error = translate(exc)
        if not (isinstance(error, QueryTimeoutError) and error.limit == "busy_timeout"):
            return None
        return QueryTimeoutError(
            "connect_timeout",
            f"SQLite database {self._url.database!r} is locked by another connection "
            f"({error.detail})",
            seconds=self._connect_timeout,
        )

    def _error_of(self, exc: BaseException) -> BaseException:
        """What a unit of work raises for ``exc``: database errors as StorageErrors (timeouts
        stating their configured value); anything else unchanged."""
        if not isinstance(exc, Exception) or not (
            isinstance(exc, StorageError) or _is_database_error(exc)
        ):
            return exc
        error = translate(exc)
        if isinstance(error, QueryTimeoutError) and error.seconds is None:
            seconds = self.timeouts.seconds(error.limit)
            if seconds is not None:
                return error.with_seconds(seconds)
        return error

    async def _dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = None
        self._sessions = None
        self._readers = None

    def _storage_error(self, exc: Exception) -> StorageError:
        """An unreachable server as the error naming where; anything else translated."""
        if _is_connection_problem(exc):
            return self._connection_error(exc)
        return translate(exc)

    def _connection_error(self, exc: BaseException) -> DatabaseConnectionError:
        return unreachable(self._url, exc)


def _is_database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError | OSError)


def _is_connection_problem(exc: BaseException) -> bool:
    return isinstance(
        translate(exc) if isinstance(exc, Exception) else exc, DatabaseConnectionError
    )
