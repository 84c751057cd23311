"""PositionRepository: open and closed positions.

At most one open position per (symbol, exchange, side) is enforced by the database (a partial
unique index), so two racing writers cannot both open one: the loser gets a ConflictError.
Long and short may be open together (hedge mode).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, insert, literal, select, update

from iftb.data.storage.enums import PositionStatus, Side
from iftb.data.storage.errors import ConflictError, NotFoundError, StorageError, ValidationError
from iftb.data.storage.models import PositionModel
from iftb.data.storage.records import Position
from iftb.data.storage.repositories.base import (
    GENERATED_COLUMNS,
    all_records,
    one_or_none,
    touched,
)
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.scopes import SCOPE_COLUMNS
from iftb.data.storage.sql_functions import dec_div, dec_mul, dec_round, dec_sub, dec_within
from iftb.data.storage.types import ExactNumeric
from iftb.data.storage.validation import checked_id, choice_rule, decimal_rule

_COLUMNS = PositionModel.__table__.columns
_WRITABLE = [
    name
    for name in _COLUMNS.keys()  # noqa: SIM118 - a column collection, not a dict
    if name not in GENERATED_COLUMNS and name not in SCOPE_COLUMNS
]
_PRICE = decimal_rule("price", 20, 8)
_IS_OPEN = PositionModel.status == PositionStatus.OPEN.value
_NEXT_VERSION = {"version": PositionModel.version + 1}


class PositionRepository(ScopedRepository):
    """A scope's positions."""

    async def get_open_positions(self, exchange: str = "binance") -> list[Position]:
        """Every open position on ``exchange``, oldest first."""
        statement = (
            select(*_COLUMNS)
            .where(self._in_scope(PositionModel), _IS_OPEN, PositionModel.exchange == exchange)
            .order_by(PositionModel.entry_time, PositionModel.id)
        )
        return all_records(Position, await self._execute(statement))

    async def get_position(
        self, symbol: str, exchange: str = "binance", side: str | None = None
    ) -> Position | None:
        """The open position on ``symbol``; with both sides open, ``side`` must say which."""
        conditions = [
            self._in_scope(PositionModel),
            _IS_OPEN,
            PositionModel.symbol == symbol,
            PositionModel.exchange == exchange,
        ]
        if side is not None:
            conditions.append(PositionModel.side == choice_rule("side", Side)(side).value)
        found = all_records(Position, await self._execute(select(*_COLUMNS).where(*conditions)))
        if len(found) > 1:
            raise ValidationError(
                f"side: both long and short positions are open on {symbol} ({exchange}); "
                "pass side='long' or side='short'",
                field="side",
            )
        return found[0] if found else None

    async def update_position(self, position: Position) -> Position:
        """Insert a position without an id, or update the stored one; returns what is stored.

        An update is written only over the version ``position`` was read at, and only while the
        stored position is open: a stale copy gets a ``ConflictError`` instead of undoing newer
        values, and a closed or liquidated position is never re-opened.
        """
        position.validate()
        if position.id is None:
            statement = insert(PositionModel).values(self._row_values(position, PositionModel))
            stored = one_or_none(Position, await self._write(statement.returning(*_COLUMNS)))
            assert stored is not None
            return stored
        self._claim(position, {})
        values = {name: getattr(position, name) for name in _WRITABLE}
        updated = await self._update_if_current(
            PositionModel, Position, position, values, _IS_OPEN, self._in_scope(PositionModel)
        )
        if updated is None:
            raise await self._refusal(position.id, position.version)
        return updated

    async def close_position(
        self,
        position_id: int,
        status: str = PositionStatus.CLOSED,
        exit_price: Decimal | None = None,
    ) -> Position:
        """Mark an open position closed or liquidated, at ``exit_price`` when given."""
        final = choice_rule("status", PositionStatus)(status)
        if final == PositionStatus.OPEN:
            raise ValidationError("status: closing needs 'closed' or 'liquidated'", field="status")
        values: dict[str, Any] = {"status": final.value, **_NEXT_VERSION, **touched(PositionModel)}
        if exit_price is not None:
            values |= _marked_values(_PRICE(exit_price))
        statement = (
            update(PositionModel)
            .where(
                PositionModel.id == checked_id("position_id", position_id),
                self._in_scope(PositionModel),
                _IS_OPEN,
            )
            .values(values)
            .returning(*_COLUMNS)
        )
        closed = one_or_none(Position, await self._write(statement))
        if closed is None:
            raise await self._refusal(position_id)
        return closed

    async def mark_to_market(self, symbol: str, price: Decimal, exchange: str = "binance") -> int:
        """Revalue every open position on ``symbol`` at ``price`` in one statement.

        Returns:
            How many positions were updated.
        """
        statement = (
            update(PositionModel)
            .where(
                self._in_scope(PositionModel),
                _IS_OPEN,
                PositionModel.symbol == symbol,
                PositionModel.exchange == exchange,
            )
            .values(_marked_values(_PRICE(price)) | _NEXT_VERSION | touched(PositionModel))
        )
        result = await self._write(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _refusal(self, position_id: int, version: int | None = None) -> StorageError:
        """Why a conditional write to position ``position_id`` changed nothing."""
        found = await self._execute(
            select(PositionModel.status, PositionModel.version).where(
                PositionModel.id == position_id, self._in_scope(PositionModel)
            )
        )
        row = found.one_or_none()
        if row is None:
            return NotFoundError(f"no position with id {position_id} in scope {self.scope}")
        if row.status != PositionStatus.OPEN:
            return ConflictError(
                f"position {position_id} is already {row.status}; a closed position is final"
            )
        return ConflictError(
            f"position {position_id} changed since it was read (version {version}, now "
            f"{row.version}); read it again and retry; nothing was written"
        )


def _marked_values(price: Decimal) -> dict[str, ColumnElement[Any]]:
    """Current price, unrealized PnL (price move × quantity, sign by side) and its percentage
    of the margin, as SQL on the row's own columns. A value its column cannot hold is stored
    as NULL (unknown), on both backends, so one extreme position never stops the others from
    being revalued."""
    money = PositionModel.entry_price.type
    long_move = dec_sub(_literal(price, money), PositionModel.entry_price)
    short_move = dec_sub(PositionModel.entry_price, _literal(price, money))
    move = case((PositionModel.side == Side.LONG.value, long_move), else_=short_move)
    pnl = dec_round(dec_mul(move, PositionModel.quantity), 8)
    pct = dec_round(dec_mul(dec_div(pnl, PositionModel.margin), _literal(Decimal(100), money)), 4)
    return {
        "current_price": _literal(price, money),
        "unrealized_pnl": _within_column(pnl, PositionModel.unrealized_pnl),
        "unrealized_pnl_pct": _within_column(pct, PositionModel.unrealized_pnl_pct),
    }


def _within_column(value: ColumnElement[Any], column: Any) -> ColumnElement[Any]:
    return dec_within(value, literal(column.type.limit, ExactNumeric()))


def _literal(value: Decimal, type_: Any) -> ColumnElement[Any]:
    return literal(value, type_)
