"""Mechanics every repository shares: the session, error translation, savepoint writes,
record ↔ row mapping and the native upsert.

Repositories use the session they are given and never commit it: the caller owns the unit of
work (``DatabaseManager.get_session()``). They return domain records, never ORM rows.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from decimal import localcontext
from functools import lru_cache
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, Executable, Result, alias, delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage.errors import ValidationError, translated_errors
from iftb.data.storage.sql_functions import utcnow
from iftb.data.storage.validation import BIGINT_MAX, DECIMAL_CONTEXT, aware_utc

RecordT = TypeVar("RecordT")
P = ParamSpec("P")
R = TypeVar("R")

# Set by the database, never by a caller: the key, the insertion time, the update triggers and
# the optimistic version (bumped by every repository update).
GENERATED_COLUMNS = frozenset({"id", "created_at", "updated_at", "last_updated", "version"})


class Repository:
    """Base of the repositories: holds the session and runs statements with translated errors."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every public coroutine of a repository computes in the library's decimal context."""
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(member):
                setattr(cls, name, _in_decimal_context(member))

    @property
    def session(self) -> AsyncSession:
        return self._session

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``: for the few paths that differ by backend."""
        return self._session.get_bind().dialect.name

    async def _execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        """Execute with driver errors translated into the storage hierarchy.

        Runs on the session's connection (Core): repositories select columns, never entities,
        so the ORM's result machinery would only add cost.
        """
        with translated_errors():
            connection = await self._session.connection()
            return await connection.execute(statement, parameters)

    async def _write(self, statement: Executable, rows: Sequence[Any] | None = None) -> Result[Any]:
        """Execute a write (once per mapping of ``rows`` when given) inside a savepoint: if the
        database refuses it, the caller's unit of work is left as it was (and still usable),
        not aborted."""
        with translated_errors():
            async with self._session.begin_nested():
                return await self._session.execute(statement, rows)

    async def _insert_record(self, record: Any, model: type[DeclarativeBase]) -> int:
        """Validate a record, insert it, and return its database id."""
        record.validate()
        statement = insert(model).values(self._row_values(record, model))
        result = await self._write(statement.returning(model.__table__.c.id))
        return int(result.scalar_one())

    def _row_values(self, record: Any, model: type[DeclarativeBase]) -> dict[str, Any]:
        """The column values a new row of ``record`` gets (scoped repositories add the scope)."""
        return record_values(record, model)

    async def _purge(self, model: type[DeclarativeBase], older_than: datetime) -> int:
        """Delete the rows created before ``older_than`` (retention); returns how many went."""
        created_at = model.__table__.c.created_at
        statement = delete(model).where(created_at < aware_utc("older_than", older_than))
        result = await self._write(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _update_if_current(
        self,
        model: type[DeclarativeBase],
        record_type: type[RecordT],
        current: Any,
        values: Mapping[str, Any],
        *conditions: ColumnElement[bool],
    ) -> RecordT | None:
        """Optimistic write: update the row ``current`` was read from, only if it is still at
        the version read (and meets ``conditions``), bumping the version. None when it is not:
        another writer got there first, and the caller decides which ConflictError that is.

        A record without a version (built by hand, not read) is written over whatever is stored.
        """
        table = model.__table__
        where = [table.c.id == current.id, *conditions]
        if current.version is not None:
            where.append(table.c.version == current.version)
        statement = (
            update(model)
            .where(*where)
            .values(dict(values) | touched(model) | {"version": table.c.version + 1})
            .returning(*table.columns)
        )
        return one_or_none(record_type, await self._write(statement))

    def _insert(self, model: type[DeclarativeBase]) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which has ``on_conflict_do_update`` on both backends."""
        dialect_insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        return dialect_insert(model)

    def _upsert(
        self,
        model: type[DeclarativeBase],
        values: Mapping[str, Any],
        key: Iterable[str],
        where: ColumnElement[bool] | None = None,
    ) -> Executable:
        """One native ``INSERT ... ON CONFLICT (key) DO UPDATE`` returning the stored row;
        ``where`` names the partial unique index the key belongs to."""
        key_columns = list(key)
        statement = self._insert(model).values(dict(values))
        excluded = _excluded(model)
        updates = {name: excluded.c[name] for name in values if name not in key_columns}
        upsert: Executable = statement.on_conflict_do_update(
            index_elements=key_columns, index_where=where, set_=updates
        ).returning(*model.__table__.columns)
        return upsert


@lru_cache(maxsize=64)
def _excluded(model: type[DeclarativeBase]) -> Any:
    """The row an upsert proposed (``excluded``, the same name on both backends), built once per
    table: the dialects build it anew for every statement, a proxy per column."""
    return alias(model.__table__, name="excluded")


def touched(model: type[DeclarativeBase]) -> dict[str, Any]:
    """The update-timestamp column of ``model`` set to now, for UPDATE and upsert statements
    (the triggers keep it current for any other writer)."""
    names = model.__table__.columns.keys()
    return {name: utcnow() for name in ("updated_at", "last_updated") if name in names}


def record_values(record: Any, model: type[DeclarativeBase]) -> dict[str, Any]:
    """The record's writable column values; None is left out so server defaults apply."""
    columns = model.__table__.columns.keys()
    return {
        f.name: value
        for f in fields(record)
        if f.name in columns
        and f.name not in GENERATED_COLUMNS
        and (value := getattr(record, f.name)) is not None
    }


def one_or_none(record_type: type[RecordT], result: Result[Any]) -> RecordT | None:
    """The single row of ``result`` as a record, or None."""
    row = result.mappings().first()
    return None if row is None else record_type.from_row(row)  # type: ignore[attr-defined]


def all_records(record_type: type[RecordT], result: Result[Any]) -> list[RecordT]:
    return [record_type.from_row(row) for row in result.mappings()]  # type: ignore[attr-defined]


def checked_limit(limit: int, field: str = "limit") -> int:
    """A row count: positive, and within BIGINT (what PostgreSQL's LIMIT and SQLite take)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= BIGINT_MAX:
        raise ValidationError(
            f"{field}: must be a whole number in [1, {BIGINT_MAX}] (got {limit!r})", field=field
        )
    return limit


def in_one_savepoint(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``method`` (of a repository) run in one savepoint: if the database, or a rule checked
    along the way, refuses any of its statements, none of them stays, and the caller's unit of
    work is as it was and still usable. One savepoint per call, not per statement."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        repository = args[0]
        assert isinstance(repository, Repository)
        with translated_errors():
            async with repository.session.begin_nested():
                return await method(*args, **kwargs)

    return run


def _in_decimal_context(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``method`` run in ``DECIMAL_CONTEXT``, whatever the caller's context (PnL, percentages,
    averages and bound values are then the same for every caller). The decimal context is a
    context variable, so this task alone sees it, and only until the method returns."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(DECIMAL_CONTEXT):
            return await method(*args, **kwargs)

    return run
