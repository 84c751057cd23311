"""Mechanics every repository shares: the session, error translation, record ↔ row mapping.

Repositories use the session they are given and never commit it: the caller owns the unit of
work (``DatabaseManager.get_session()``). They return domain records, never ORM rows.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy import Executable, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage.errors import translated_errors


class Repository:
    """Base of the repositories: holds the session and runs statements with translated errors."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    @property
    def session(self) -> AsyncSession:
        return self._session

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``: for the few bulk paths that differ by backend."""
        return self._session.get_bind().dialect.name

    async def _execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        """Execute with driver errors translated into the storage hierarchy."""
        with translated_errors():
            return await self._session.execute(statement, parameters)


def record_values(
    record: Any, model: type[DeclarativeBase], *, skip_none: bool = False
) -> dict[str, Any]:
    """The record's fields that are columns of ``model`` (``id``/``created_at`` when set).

    ``skip_none`` leaves unset fields out, so the server default applies.
    """
    columns = model.__table__.columns.keys()
    values = {f.name: getattr(record, f.name) for f in fields(record) if f.name in columns}
    return {k: v for k, v in values.items() if not (skip_none and v is None)}
