"""Engines for both backends: where connection setup differs between SQLite and PostgreSQL.

Every wait a database call can make is bounded here: statement, lock and idle-in-transaction
timeouts on PostgreSQL (server settings of every connection), the busy timeout on SQLite, and
the pool's checkout timeout on both. Read-only units of work get their own engine view: on
SQLite they begin a deferred transaction (WAL readers neither wait for the writer nor block it)
with ``query_only`` on; on PostgreSQL, a ``READ ONLY`` transaction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from iftb.config import MAX_TIMEOUT
from iftb.data.storage.sql_functions import register_sqlite_functions
from iftb.data.storage.validation import storable_text

SQLITE_PRAGMAS = {
    "journal_mode": "WAL",  # readers never block the writer, nor the writer the readers
    "synchronous": "NORMAL",  # durable at checkpoints; safe with WAL against corruption
    "foreign_keys": "ON",
}

COMMAND_GRACE = 5.0
"""Seconds the client waits past ``statement_timeout`` for the server's own answer to it."""

POSTGRES_SERVER_SETTINGS = {
    "application_name": "iftb",
    "timezone": "UTC",
    # Statements are prepared and cached per connection; a generic plan is made once and pruned
    # to the partitions it needs at run time. Custom plans would be re-planned on every call,
    # over every candle partition: 2.4x the latency of latest-100 at 56 partitions.
    # (On a Citus coordinator ``_CITUS_SESSION`` undoes this: see there.)
    "plan_cache_mode": "force_generic_plan",
    # JIT compilation pays off for long analytical queries; ours are short, and a cost estimate
    # over a table without statistics yet made PostgreSQL compile list_scopes for 1.6 s to run it
    # in 30 ms.
    "jit": "off",
}

CITUS_CACHED_CONNECTIONS = 4
"""Connections to each worker a Citus session keeps open between transactions, at least.

Citus keeps one by default, so a bulk write that reaches several shards of a worker reconnects to
it on every batch: with 4, writes ran 1.2x to 1.25x faster in the benchmark (docs/scaling.md). A
higher value set on the server is kept."""

_CITUS_SESSION = (
    "SELECT pg_catalog.set_config('plan_cache_mode', 'auto', false),"
    " pg_catalog.set_config('citus.max_cached_conns_per_worker', GREATEST("
    "pg_catalog.current_setting('citus.max_cached_conns_per_worker')::int, $1::int)::text, false)"
    " FROM pg_catalog.pg_extension WHERE extname = 'citus'"
)
"""On a Citus database: PostgreSQL's default plan choice (Citus cannot plan every generic plan
with parameters: it fails "could not create distributed plan" on the gap and resample queries,
and it prunes shards at plan time itself), and connections to the workers kept open."""


READ_ONLY = "iftb_read_only"
"""Execution option: the unit of work only reads (see the module docstring)."""

BUSY_WAIT = "iftb_busy_wait"
"""Execution option: seconds a SQLite transaction waits for the write lock, overriding the
busy timeout (``connect()`` waits no longer than its own ``connect_timeout``)."""

_LAST_ERROR = "iftb_last_error"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a database call may wait, in seconds.

    ``statement``, ``lock`` and ``idle_in_transaction`` are PostgreSQL server limits (0 turns
    one off); ``busy`` is how long a SQLite writer waits for the lock, ``pool`` how long a unit
    of work waits for a free pooled connection (0: not at all). Hitting one raises
    ``QueryTimeoutError`` naming it.

    A server limit holds only while the server runs: a frozen server (stopped, swapping, its
    host paused) answers nothing. So the client bounds each PostgreSQL call too, at
    ``statement`` plus ``COMMAND_GRACE`` (``command_timeout``, asyncpg's own limit).
    """

    statement: float = 30.0
    lock: float = 10.0
    idle_in_transaction: float = 60.0
    busy: float = 30.0
    pool: float = 30.0

    def __post_init__(self) -> None:
        for name, seconds in asdict(self).items():
            if not 0 <= seconds <= MAX_TIMEOUT:  # also refuses NaN and infinity
                raise ValueError(
                    f"{name} timeout must be between 0 and {MAX_TIMEOUT} seconds (got {seconds!r})"
                )

    def seconds(self, limit: str) -> float | None:
        """The configured value of ``limit`` (a ``QueryTimeoutError.limit``), if it is one."""
        return {
            "statement_timeout": self.statement,
            "lock_timeout": self.lock,
            "idle_in_transaction_session_timeout": self.idle_in_transaction,
            "busy_timeout": self.busy,
            "pool_timeout": self.pool,
            "command_timeout": self.command,
        }.get(limit)

    @property
    def command(self) -> float | None:
        """The client's bound on one PostgreSQL call: the statement limit and a grace for the
        server's own answer to it; none when the statement limit is off."""
        return self.statement + COMMAND_GRACE if self.statement else None

    def server_settings(self) -> dict[str, str]:
        """The PostgreSQL limits as per-connection server settings (milliseconds)."""
        return {
            "statement_timeout": _milliseconds(self.statement),
            "lock_timeout": _milliseconds(self.lock),
            "idle_in_transaction_session_timeout": _milliseconds(self.idle_in_transaction),
        }


def create_engine(
    url: URL,
    *,
    echo: bool,
    pool_size: int,
    max_overflow: int,
    pool_recycle: int,
    connect_timeout: float,
    timeouts: Timeouts,
    client_bound: bool = True,
) -> AsyncEngine:
    """The engine for ``url``, with the backend's connection setup and bounded waits
    (``client_bound``: PostgreSQL calls bounded on the client too, ``Timeouts.command``; off for
    the schema's maintenance, which lifts the statement limit)."""
    options: dict[str, Any] = {
        "echo": echo,
        "hide_parameters": True,  # parameters may hold secrets; never in logs or errors
        "json_serializer": _json_dumps,
    }
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": timeouts.pool}
    if url.get_backend_name() == "sqlite":
        if _is_file_database(url):  # an in-memory database lives in one connection: no pool
            options |= pool
        # sqlite3's own timeout bounds the waits of the connect hook; the pragma takes over after.
        options["connect_args"] = {"timeout": connect_timeout}
        engine = create_async_engine(url, **options)
        _install_sqlite_hooks(engine, timeouts.busy)
        _refuse_unsendable_text(engine)
        return engine
    options |= pool | {
        "pool_pre_ping": True,
        "pool_recycle": pool_recycle,
        "connect_args": {
            "timeout": connect_timeout,
            "command_timeout": timeouts.command if client_bound else None,
            "server_settings": POSTGRES_SERVER_SETTINGS | timeouts.server_settings(),
        },
    }
    engine = create_async_engine(url, **options)
    _refuse_unsendable_text(engine)
    _install_postgres_hooks(engine)
    return engine


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """A view of ``engine`` (same pool) whose transactions only read."""
    return engine.execution_options(**{READ_ONLY: True, "postgresql_readonly": True})


def _refuse_unsendable_text(engine: AsyncEngine) -> None:
    """A text argument of a statement (a read's filter: records are checked when built) that
    PostgreSQL cannot take is a ValidationError on both backends, before it is sent: a lone
    surrogate breaks both drivers' UTF-8 encoding, and SQLite would match NUL where PostgreSQL
    refuses it. Bulk writes (executemany) carry validated records only and are not re-checked."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _check(
        _conn: Any, _cursor: Any, _sql: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        if executemany or not parameters:
            return
        values = parameters.values() if isinstance(parameters, dict) else parameters
        for position, value in enumerate(values, start=1):
            if isinstance(value, str):
                storable_text(f"argument {position}", value)


def _install_postgres_hooks(engine: AsyncEngine) -> None:
    """On a Citus coordinator, every new connection gets ``_CITUS_SESSION``."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Straight on asyncpg, outside any transaction: the adapter's cursor would open one,
        # and the pool's reset would roll the setting back with it.
        await_only(
            dbapi_connection.driver_connection.execute(_CITUS_SESSION, CITUS_CACHED_CONNECTIONS)
        )


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout: float) -> None:
    """Pragmas and exact-decimal functions on every connection; explicit BEGIN for transactions.

    pysqlite's own transaction handling begins transactions lazily and commits before DDL;
    taking it over (SQLAlchemy's documented recipe) gives real transactional DDL and SAVEPOINTs.
    Writers begin ``IMMEDIATE`` (take the write lock up front rather than fail to upgrade a read
    lock); readers begin deferred and never take it.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma, value in SQLITE_PRAGMAS.items():
            cursor.execute(f"PRAGMA {pragma} = {value}")
        cursor.close()
        raw = dbapi_connection.driver_connection
        # aiosqlite runs sqlite3 in its own thread; the functions must be created there.
        await_only(raw._execute(register_sqlite_functions, raw._conn))

    @event.listens_for(engine.sync_engine, "handle_error")
    def _keep_the_first_error(context: ExceptionContext) -> BaseException | None:
        """SQLite rolls the whole transaction back on some errors (a full disk), so rolling back
        to the savepoint then fails with "no such savepoint": raise the error that broke it."""
        if context.connection is None:
            return None
        if "no such savepoint" in str(context.original_exception):
            first: BaseException | None = context.connection.info.pop(_LAST_ERROR, None)
            return first
        context.connection.info[_LAST_ERROR] = context.sqlalchemy_exception
        return None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.info.pop(_LAST_ERROR, None)
        options = connection.get_execution_options()
        reading = bool(options.get(READ_ONLY))
        wait = options.get(BUSY_WAIT, busy_timeout)
        _set_pragma(connection, "busy_timeout", _milliseconds(wait))
        _set_pragma(connection, "query_only", "1" if reading else "0")
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def _set_pragma(connection: Connection, pragma: str, value: str) -> None:
    """Set a per-connection pragma, only when it changes (the state lives with the DBAPI
    connection, so a pooled connection remembers it across units of work)."""
    state = connection.connection.info
    key = f"iftb_pragma_{pragma}"
    if state.get(key) != value:
        connection.exec_driver_sql(f"PRAGMA {pragma} = {value}")
        state[key] = value


def _milliseconds(seconds: float) -> str:
    return str(round(seconds * 1000))


def _is_file_database(url: URL) -> bool:
    database = url.database or ""
    return database not in ("", ":memory:") and "mode=memory" not in str(url.query)


def _json_dumps(value: Any) -> str:
    """Strict JSON: NaN and Infinity are not JSON, and PostgreSQL refuses them."""
    return json.dumps(value, allow_nan=False)
