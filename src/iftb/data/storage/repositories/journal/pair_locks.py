"""PairLockRepository: pairs a bot must not trade for a while, as freqtrade keeps them.

A lock blocks one side of a symbol, or both (``*``), until its end time; expired locks are
ignored by every read, and ``unlock`` ends a lock early by marking it inactive (history stays).
``lock`` always adds a lock; ``try_lock`` takes one only where none is in force, atomically
against every other ``try_lock`` of the symbol (an advisory lock on PostgreSQL, the database's
write lock on SQLite), so two bots racing for a pair cannot both take it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, insert, or_, select, true, update

from iftb.data.storage.advisory_locks import hold_locks
from iftb.data.storage.enums import LockSide
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.journal_records import PairLock
from iftb.data.storage.models import PairLockModel
from iftb.data.storage.repositories.base import all_records, one_or_none
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.validation import aware_utc, choice_rule, column_rules

_LOCK = PairLockModel
_RULES = column_rules(PairLockModel)
_side = choice_rule("side", LockSide)


class PairLockRepository(ScopedRepository):
    """A scope's pair locks."""

    async def lock(
        self,
        symbol: str,
        until: datetime,
        side: str = LockSide.BOTH,
        reason: str | None = None,
        *,
        now: datetime | None = None,
    ) -> PairLock:
        """Lock ``symbol`` on ``side`` until ``until`` (which must be after now)."""
        start = aware_utc("now", now or datetime.now(UTC))
        end = aware_utc("until", until)
        if end <= start:
            raise ValidationError(
                f"until: {end.isoformat()} is not after {start.isoformat()}", field="until"
            )
        values = {
            "symbol": _RULES["symbol"](symbol),
            "side": _side(side).value,
            "lock_time": start,
            "lock_end_time": end,
            "reason": None if reason is None else _RULES["reason"](reason),
        } | self.scope.values()
        statement = insert(PairLockModel).values(values).returning(*_LOCK.__table__.columns)
        stored = one_or_none(PairLock, await self._write(statement))
        assert stored is not None
        return stored

    async def try_lock(
        self,
        symbol: str,
        until: datetime,
        side: str = LockSide.BOTH,
        reason: str | None = None,
        *,
        now: datetime | None = None,
    ) -> PairLock | None:
        """Lock ``symbol`` on ``side`` until ``until`` unless a lock is in force there (on that
        side or both; for ``*``, on either): the new lock, or None when it was taken."""
        start = aware_utc("now", now or datetime.now(UTC))
        name = _RULES["symbol"](symbol)
        connection = await self._session.connection()
        await hold_locks(connection, exclusive=[f"iftb-pair-lock:{self.scope}:{name}"])
        if await self.active_locks(name, side, at=start):
            return None
        return await self.lock(name, until, side, reason, now=start)

    async def active_locks(
        self, symbol: str | None = None, side: str | None = None, *, at: datetime | None = None
    ) -> list[PairLock]:
        """The locks in force at ``at`` (now), soonest to end first; on ``side``, the locks of
        that side and those of both sides."""
        statement = select(*_LOCK.__table__.columns).where(*self._active(symbol, side, at))
        statement = statement.order_by(_LOCK.lock_end_time, _LOCK.id)
        return all_records(PairLock, await self._execute(statement))

    async def is_locked(
        self, symbol: str, side: str = LockSide.BOTH, *, at: datetime | None = None
    ) -> bool:
        return bool(await self.active_locks(symbol, side, at=at))

    async def unlock(
        self, symbol: str, side: str | None = None, *, at: datetime | None = None
    ) -> int:
        """End the locks of ``symbol`` in force (of ``side`` and both sides, when given); how
        many ended."""
        statement = update(PairLockModel).where(*self._active(symbol, side, at))
        result = await self._write(statement.values(active=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def _active(
        self, symbol: str | None, side: str | None, at: datetime | None
    ) -> list[ColumnElement[bool]]:
        moment = aware_utc("at", at or datetime.now(UTC))
        conditions = [
            self._in_scope(PairLockModel),
            _LOCK.active == true(),
            _LOCK.lock_end_time > moment,
            _LOCK.lock_time <= moment,
        ]
        if symbol is not None:
            conditions.append(_LOCK.symbol == symbol)
        if side is not None and (wanted := _side(side)) != LockSide.BOTH:
            conditions.append(or_(_LOCK.side == wanted.value, _LOCK.side == LockSide.BOTH.value))
        return conditions
