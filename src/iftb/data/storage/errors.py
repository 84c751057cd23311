"""The storage error hierarchy, and the one place driver exceptions are translated into it.

Callers catch these types only; a raw SQLAlchemy, asyncpg or sqlite3 exception never crosses
the repository boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from iftb.utils.redaction import redact


class StorageError(Exception):
    """Base of every error the storage layer raises. Its message is redacted: a driver message
    or a rejected value quoted in it may carry a credential."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class NotConnectedError(StorageError):
    """The DatabaseManager was used before ``connect()`` or after ``disconnect()``."""


class DatabaseConnectionError(StorageError):
    """The database could not be reached, or the connection was lost."""


class SchemaOutOfDateError(StorageError):
    """The database schema is behind the code; run ``iftb-db upgrade``."""


class SchemaTooNewError(SchemaOutOfDateError):
    """The database was migrated by a newer iftb than this one: upgrade iftb, not the schema."""


class ClusterError(StorageError):
    """The database is not the Citus cluster an operation needs: no extension, no workers."""


class QueryTimeoutError(StorageError):
    """A bounded wait ran out. ``limit`` names which one: ``statement_timeout``,
    ``lock_timeout``, ``idle_in_transaction_session_timeout`` (PostgreSQL), ``command_timeout``
    (the client's own bound on a PostgreSQL call: the server sent nothing, e.g. it is frozen),
    ``busy_timeout`` (SQLite) or ``pool_timeout``; ``seconds`` is its configured value when
    known."""

    def __init__(self, limit: str, detail: str, *, seconds: float | None = None) -> None:
        self.limit = limit
        self.detail = detail
        self.seconds = seconds
        value = f" ({seconds:g} s)" if seconds is not None else ""
        super().__init__(f"{limit}{value} exceeded: {detail}")

    def with_seconds(self, seconds: float) -> QueryTimeoutError:
        """The same error, stating the limit's configured value."""
        located = QueryTimeoutError(self.limit, self.detail, seconds=seconds)
        located.__cause__ = self.__cause__
        return located


class DiskFullError(StorageError):
    """The disk (or SQLite's ``max_page_count``) is full. Not transient: retrying cannot help
    until space is freed, so it is never retried."""


class ReadOnlyError(StorageError):
    """A write was attempted in a read-only unit of work (``get_session(read_only=True)``)."""


class ValidationError(StorageError, ValueError):
    """Input broke a data rule. Names the row (when in a batch), the field and the rule."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None):
        self.field = field
        self.index = index
        prefix = f"row {index}: " if index is not None else ""
        super().__init__(prefix + message)

    def at_index(self, index: int, batch: str | None = None) -> ValidationError:
        """The same error, located at position ``index`` of a batch (of the list ``batch``,
        when a call takes several: ``fills row 3: ...``)."""
        located = ValidationError(str(self), field=self.field, index=index)
        if batch is not None:
            located.args = (f"{batch} {located}",)
        located.__cause__ = self.__cause__
        return located


class DuplicateError(StorageError):
    """A row with the same natural key already exists."""


class NotFoundError(StorageError):
    """The row asked for does not exist."""


class ConflictError(StorageError):
    """The write would break a state invariant, e.g. a second open position on one side."""


# Unique violations on these tables break a state invariant rather than duplicate a record.
_CONFLICT_TABLES = frozenset({"positions"})


def translate(exc: Exception) -> StorageError:
    """Map a driver or SQLAlchemy exception to the storage hierarchy (never leaks credentials)."""
    if isinstance(exc, StorageError):
        return exc
    limit = _limit_or_condition(exc)
    if limit is not None:
        return limit
    citus = _citus_internal_error(exc)
    if citus is not None:
        return citus
    if not isinstance(exc, sa_exc.SQLAlchemyError) and _sqlstate(exc):
        return _translate_raw_driver_error(exc)
    if isinstance(exc, sa_exc.IntegrityError):
        detail = _driver_message(exc)
        if _is_unique_violation(exc):
            table = _violated_table(exc)
            kind = ConflictError if table in _CONFLICT_TABLES else DuplicateError
            return kind(detail)
        return ValidationError(f"constraint violated: {detail}")
    if isinstance(exc, sa_exc.DataError) or (
        # a data exception (class 22) raised by a function is not always a DataError
        isinstance(exc, sa_exc.DBAPIError) and (_driver_sqlstate(exc) or "").startswith("22")
    ):
        return ValidationError(f"value rejected by the database: {_driver_message(exc)}")
    if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError):
        # Raised by a bind processor before anything reached the database.
        if isinstance(exc.orig, ValidationError):
            return exc.orig
        if isinstance(exc.orig, ValueError | TypeError):
            return ValidationError(f"value rejected before sending: {exc.orig}")
    if isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        or _is_connection_sqlstate(_driver_sqlstate(exc))
    ):
        return DatabaseConnectionError(f"database unavailable: {_driver_message(exc)}")
    if isinstance(exc, TimeoutError):  # asyncpg's command_timeout: no answer at all
        return QueryTimeoutError(
            "command_timeout", "the server sent no answer (frozen, or its host unreachable)"
        )
    if isinstance(exc, OSError | ConnectionError):
        return DatabaseConnectionError(f"database unavailable: {type(exc).__name__}: {exc}")
    return StorageError(f"{type(exc).__name__}: {_driver_message(exc)}")


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise anything from the driver as a StorageError, keeping the original as the cause."""
    try:
        yield
    except StorageError:
        raise
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise translate(exc) from exc
    except Exception as exc:
        if _sqlstate(exc):  # raised by the driver itself, e.g. asyncpg's COPY
            raise translate(exc) from exc
        raise


# SQLSTATEs and SQLite result codes that mean a limit was hit or a condition holds, whatever
# the statement: checked before the generic mapping (SQLite reports all of them as
# OperationalError, which would otherwise read as a lost connection and be retried).
_TIMEOUT_SQLSTATES = {"55P03": "lock_timeout", "25P03": "idle_in_transaction_session_timeout"}


def _limit_or_condition(exc: Exception) -> StorageError | None:
    """A timeout, a full disk or a write in a read-only transaction, from either backend."""
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give in time
        return QueryTimeoutError("pool_timeout", str(exc).splitlines()[0])
    orig = getattr(exc, "orig", None) or exc
    state = _driver_sqlstate(exc) or ""
    sqlite_code = str(getattr(orig, "sqlite_errorname", ""))
    detail = _driver_message(exc)
    if state == "57014" and "statement timeout" in detail:  # not a cancel asked for by a user
        return QueryTimeoutError("statement_timeout", detail)
    if state in _TIMEOUT_SQLSTATES:
        return QueryTimeoutError(_TIMEOUT_SQLSTATES[state], detail)
    if sqlite_code.startswith("SQLITE_BUSY"):
        return QueryTimeoutError("busy_timeout", detail)
    if state == "53100" or sqlite_code == "SQLITE_FULL":
        return DiskFullError(f"disk full: {detail}")
    if state == "25006" or sqlite_code.startswith("SQLITE_READONLY"):
        return ReadOnlyError(f"write refused (read-only unit of work or database): {detail}")
    return None


def _sqlstate(exc: object) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def _driver_sqlstate(exc: Exception) -> str | None:
    """The SQLSTATE of the driver's exception behind ``exc`` (or of ``exc`` itself), where the
    asyncpg adapter keeps it: on the exception or on its cause."""
    orig = getattr(exc, "orig", None) or exc
    return _sqlstate(orig) or _sqlstate(getattr(orig, "__cause__", None))


def _is_connection_sqlstate(state: str | None) -> bool:
    """Connection exceptions (08), the server shutting down or starting up (57P), and too many
    connections (53300): the database is unreachable for now, not the statement wrong."""
    return state is not None and (state.startswith(("08", "57P")) or state == "53300")


def _translate_raw_driver_error(exc: Exception) -> StorageError:
    """Errors straight from asyncpg (bulk COPY bypasses SQLAlchemy), by SQLSTATE class."""
    state = _sqlstate(exc) or ""
    detail = _driver_message(exc)
    if state == "23505":
        table = getattr(exc, "table_name", None)
        return (ConflictError if table in _CONFLICT_TABLES else DuplicateError)(detail)
    if state.startswith(("22", "23")):
        return ValidationError(f"value rejected by the database: {detail}")
    if _is_connection_sqlstate(state):
        return DatabaseConnectionError(f"database unavailable: {detail}")
    return StorageError(f"{type(exc).__name__}: {detail}")


def _driver_message(exc: Exception) -> str:
    """The driver's own message, without SQLAlchemy's echo of the statement and parameters."""
    orig = getattr(exc, "orig", None) or exc
    detail = getattr(orig, "detail", None)
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"{message} ({detail})" if detail else message


# Citus raises some errors as internal errors (XX000) that carry nothing but a message: a unique
# violation a worker found during a multi-shard COPY, and a worker lost inside a transaction.
_CITUS_INTERNAL_ERRORS: tuple[tuple[str, type[StorageError]], ...] = (
    ("duplicate key value violates unique constraint", DuplicateError),
    ("failure on connection marked as essential", DatabaseConnectionError),
)


def _citus_internal_error(exc: Exception) -> StorageError | None:
    if _driver_sqlstate(exc) != "XX000":
        return None
    orig = getattr(exc, "orig", None) or exc
    for message, kind in _CITUS_INTERNAL_ERRORS:
        if message in str(orig):
            return kind(_driver_message(exc))
    return None


def _is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate == "23505" or "UNIQUE constraint failed" in str(orig)


def _violated_table(exc: sa_exc.IntegrityError) -> str | None:
    """The table whose unique rule failed, from asyncpg's fields or SQLite's message."""
    orig = exc.orig
    table = getattr(orig, "table_name", None)
    if table:
        return str(table)
    cause = getattr(orig, "__cause__", None)
    table = getattr(cause, "table_name", None)
    if table:
        return str(table)
    message = str(orig)
    if "UNIQUE constraint failed: " in message:
        return message.split("UNIQUE constraint failed: ", 1)[1].split(".", 1)[0]
    return None


def unreachable(url: URL, exc: BaseException) -> DatabaseConnectionError:
    """A clear error naming host, port, database and user — never the password."""
    if url.get_backend_name() == "sqlite":
        where = f"SQLite database {url.database!r}"
    else:
        where = (
            f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}, "
            f"database {url.database!r}, user {url.username!r}"
        )
    reason = getattr(exc, "orig", None) or exc
    detail = str(reason).strip().splitlines()[0] if str(reason).strip() else ""
    message = f"cannot connect to {where}: {type(reason).__name__}"
    if detail:
        message += f": {detail}"
    password = url.password
    message = redact(message)
    if password:
        message = message.replace(str(password), "***")
    return DatabaseConnectionError(message)
