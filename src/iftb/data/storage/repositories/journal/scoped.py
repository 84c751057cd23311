"""What every journal repository shares: a scope, and every read and write kept inside it.

A journal repository is built with a ``Scope`` (the default scope when none is given). Its reads
see only that scope's rows, its writes stamp that scope on new rows, and a record that names
another scope is refused, so user code cannot mix two bots, or paper and live, by accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Executable, and_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage.errors import ValidationError
from iftb.data.storage.repositories.base import Repository, record_values
from iftb.data.storage.scopes import DEFAULT_SCOPE, SCOPE_COLUMNS, Scope, checked_scope


class ScopedRepository(Repository):
    """Base of the journal repositories: holds the session and the scope."""

    def __init__(self, session: AsyncSession, scope: Scope = DEFAULT_SCOPE) -> None:
        super().__init__(session)
        self._scope = checked_scope(scope)

    @property
    def scope(self) -> Scope:
        return self._scope

    def _in_scope(self, model: type[DeclarativeBase]) -> ColumnElement[bool]:
        """The rows of ``model`` that belong to this repository's scope."""
        return in_scope(model, self._scope)

    def _row_values(self, record: Any, model: type[DeclarativeBase]) -> dict[str, Any]:
        return self._claim(record, record_values(record, model))

    def _claim(self, record: Any, values: Mapping[str, Any]) -> dict[str, Any]:
        return claimed(record, self._scope, values)

    def _scoped_upsert(
        self, model: type[DeclarativeBase], values: Mapping[str, Any], key: Iterable[str]
    ) -> Executable:
        """Upsert on ``key`` within the scope: the partial unique index of live and paper rows
        (bot, mode, key), or of a backtest run's (run_id, key)."""
        run_id = model.__table__.c.run_id
        if self._scope.run_id is None:
            return self._upsert(model, values, ("bot", "mode", *key), run_id.is_(None))
        return self._upsert(model, values, ("run_id", *key), run_id.is_not(None))


@lru_cache(maxsize=1024)
def in_scope(model: type[DeclarativeBase], scope: Scope) -> ColumnElement[bool]:
    """The rows of ``model`` in ``scope`` (a run's rows by their run; the others by bot, mode
    and no run, which the partial indexes of live and paper rows serve). Built once per model
    and scope: SQL expressions are immutable, and every ledger call filters by its scope many
    times."""
    columns = model.__table__.c
    run = columns.run_id.is_(None) if scope.run_id is None else columns.run_id == scope.run_id
    return and_(columns.bot == scope.bot, columns.mode == scope.mode, run)


def claimed(record: Any, scope: Scope, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` stamped with ``scope``; a record that names another scope is refused."""
    own = scope.values()
    for name in SCOPE_COLUMNS:
        given = getattr(record, name, None)
        if given is not None and given != own[name]:
            raise ValidationError(
                f"{name}: the record belongs to scope {name}={given!r}, but this repository "
                f"writes to {scope}; use a handle of that scope",
                field=name,
            )
    return dict(values) | own
