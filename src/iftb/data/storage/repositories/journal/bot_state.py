"""BotStateRepository: a bot's key-value state per scope, surviving restarts.

A value is stored as text beside the name of its type, and read back as that type: ``str``,
``int``, ``Decimal`` (to the last digit), aware UTC ``datetime``, or JSON (dicts, lists, bools,
floats). Writing a key replaces its value, whatever its type was, with one native upsert.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select

from iftb.data.storage.enums import StateType
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.models import BotStateModel
from iftb.data.storage.repositories.base import touched
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.validation import (
    aware_utc,
    column_rules,
    json_rule,
    storable_text,
    to_decimal,
)

_KEY_TEXT = column_rules(BotStateModel)["key"]
_JSON = json_rule("value")


class BotStateRepository(ScopedRepository):
    """A scope's state: ``set``, ``get``, ``delete`` and ``items``."""

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (replacing what was there)."""
        kind, text = encode(value)
        values = {"key": _key(key), "value_type": kind.value, "value": text}
        values |= self.scope.values() | touched(BotStateModel)
        await self._write(self._scoped_upsert(BotStateModel, values, ("key",)))

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, with the type it was written with; ``default`` when unset."""
        statement = select(BotStateModel.value_type, BotStateModel.value).where(
            self._in_scope(BotStateModel), BotStateModel.key == _key(key)
        )
        row = (await self._execute(statement)).one_or_none()
        return default if row is None else decode(row.value_type, row.value)

    async def items(self) -> dict[str, Any]:
        """Every key of the scope with its value, by key."""
        statement = (
            select(BotStateModel.key, BotStateModel.value_type, BotStateModel.value)
            .where(self._in_scope(BotStateModel))
            .order_by(BotStateModel.key)
        )
        return {
            row.key: decode(row.value_type, row.value) for row in await self._execute(statement)
        }

    async def delete(self, key: str) -> bool:
        """Forget ``key``; whether it was set."""
        statement = delete(BotStateModel).where(
            self._in_scope(BotStateModel), BotStateModel.key == _key(key)
        )
        return bool((await self._write(statement)).rowcount)  # type: ignore[attr-defined]


def _key(key: Any) -> str:
    """A state key: non-empty text within the column."""
    text: str = _KEY_TEXT(key)
    if not text:
        raise ValidationError("key: a state key cannot be empty", field="key")
    return text


def encode(value: Any) -> tuple[StateType, str]:
    """The stored type and text of a state value."""
    if isinstance(value, str):
        storable_text("value", value)
        return StateType.STR, value
    if value is None:
        raise ValidationError("value: None is not a value; delete the key instead", field="value")
    if isinstance(value, bool):  # before int: a bool is an int to Python, not to the reader
        return StateType.JSON, json.dumps(value)
    if isinstance(value, int):
        return StateType.INT, str(value)
    if isinstance(value, Decimal):
        return StateType.DECIMAL, str(to_decimal("value", value))
    if isinstance(value, datetime):
        return StateType.DATETIME, aware_utc("value", value).isoformat()
    _JSON(value)
    return StateType.JSON, json.dumps(value, allow_nan=False)


def decode(kind: str, text: str) -> Any:
    """A stored state value as the type it was written with."""
    if kind == StateType.STR:
        return text
    if kind == StateType.INT:
        return int(text)
    if kind == StateType.DECIMAL:
        return Decimal(text)
    if kind == StateType.DATETIME:
        return datetime.fromisoformat(text)
    return json.loads(text)
