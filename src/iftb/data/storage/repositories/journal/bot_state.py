"""BotStateRepository: a bot's key-value state per scope, surviving restarts.

A value is stored as text beside the name of its type, and read back as that type: ``str``,
``int``, ``Decimal`` (to the last digit), aware UTC ``datetime``, or JSON (dicts, lists, bools,
floats). Writing a key replaces its value, whatever its type was, with one native upsert.

``set`` is a blind write. Where two writers may change one key from what each read, use the
atomic forms: ``compare_and_set`` (write only over the value expected) and ``increment`` (a
counter). Each takes the key in turn with every other atomic writer of it: an advisory lock of
the key on PostgreSQL, the database's write lock on SQLite.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select

from iftb.data.storage.advisory_locks import hold_locks
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

    async def compare_and_set(self, key: str, expected: Any, value: Any) -> bool:
        """Store ``value`` under ``key`` only if ``key`` holds ``expected`` now (of the same
        type; None: only if unset), atomically; whether it was stored."""
        name = _key(key)
        encode(value)  # a bad value is refused whatever the key holds
        await self._take_turn(name)
        current = await self.get(name)
        if current is None or expected is None:
            matches = current is None and expected is None
        else:
            matches = type(current) is type(expected) and current == expected
        if matches:
            await self.set(name, value)
        return matches

    async def increment(self, key: str, by: int = 1) -> int:
        """Add ``by`` to the integer under ``key`` (unset: 0), atomically; the new value."""
        name = _key(key)
        if isinstance(by, bool) or not isinstance(by, int):
            raise ValidationError(f"by: must be an integer (got {by!r})", field="by")
        await self._take_turn(name)
        current = await self.get(name, 0)
        if isinstance(current, bool) or not isinstance(current, int):
            raise ValidationError(
                f"value: {name!r} holds a {type(current).__name__}, not an integer", field="value"
            )
        await self.set(name, current + by)
        return current + by

    async def _take_turn(self, key: str) -> None:
        connection = await self._session.connection()
        await hold_locks(connection, exclusive=[f"iftb-state:{self.scope}:{key}"])

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
        try:
            return StateType.INT, str(value)
        except ValueError:  # past Python's limit on integer text (sys.int_info)
            raise ValidationError(
                "value: an integer this long cannot be written as text and read back "
                f"(over {sys.get_int_max_str_digits():,} digits)",
                field="value",
            ) from None
    if isinstance(value, Decimal):
        return StateType.DECIMAL, str(to_decimal("value", value))
    if isinstance(value, datetime):
        return StateType.DATETIME, aware_utc("value", value).isoformat()
    _JSON(value)
    _check_text_keys(value)
    return StateType.JSON, json.dumps(value, allow_nan=False)


def _check_text_keys(document: Any) -> None:
    """Every object key of ``document`` is text: JSON turns ``1`` into ``"1"``, so the value
    would not read back as written (and ``{1: "a", "1": "b"}`` would lose a key)."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ValidationError(
                        f"value: the key {key!r} is not text; a JSON object's keys are text, "
                        "so it would not read back as written",
                        field="value",
                    )
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)


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
