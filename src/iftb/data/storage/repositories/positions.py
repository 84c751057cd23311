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
from iftb.data.storage.errors import ConflictError, NotFoundError, ValidationError
from iftb.data.storage.models import PositionModel
from iftb.data.storage.records import Position
from iftb.data.storage.repositories.base import (
    GENERATED_COLUMNS,
    Repository,
    all_records,
    one_or_none,
    record_values,
    touched,
)
from iftb.data.storage.sql_functions import dec_div, dec_mul, dec_round, dec_sub
from iftb.data.storage.validation import choice_rule, decimal_rule

_COLUMNS = PositionModel.__table__.columns
_WRITABLE = [name for name in _COLUMNS.keys() if name not in GENERATED_COLUMNS]  # noqa: SIM118
_PRICE = decimal_rule("price", 20, 8)
_IS_OPEN = PositionModel.status == PositionStatus.OPEN.value


class PositionRepository(Repository):
    """Positions of the bot."""

    async def get_open_positions(self, exchange: str = "binance") -> list[Position]:
        """Every open position on ``exchange``, oldest first."""
        statement = (
            select(*_COLUMNS)
            .where(_IS_OPEN, PositionModel.exchange == exchange)
            .order_by(PositionModel.entry_time, PositionModel.id)
        )
        return all_records(Position, await self._execute(statement))

    async def get_position(
        self, symbol: str, exchange: str = "binance", side: str | None = None
    ) -> Position | None:
        """The open position on ``symbol``; with both sides open, ``side`` must say which."""
        conditions = [_IS_OPEN, PositionModel.symbol == symbol, PositionModel.exchange == exchange]
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
        """Insert a position without an id, or update the stored one; returns what is stored."""
        position.validate()
        if position.id is None:
            statement: Any = insert(PositionModel).values(record_values(position, PositionModel))
        else:
            values = {name: getattr(position, name) for name in _WRITABLE}
            statement = (
                update(PositionModel)
                .where(PositionModel.id == position.id)
                .values(values | touched(PositionModel))
            )
        stored = one_or_none(Position, await self._write(statement.returning(*_COLUMNS)))
        if stored is None:
            raise NotFoundError(f"no position with id {position.id}")
        return stored

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
        values: dict[str, Any] = {"status": final.value, **touched(PositionModel)}
        if exit_price is not None:
            values |= _marked_values(_PRICE(exit_price))
        statement = (
            update(PositionModel)
            .where(PositionModel.id == position_id, _IS_OPEN)
            .values(values)
            .returning(*_COLUMNS)
        )
        closed = one_or_none(Position, await self._write(statement))
        if closed is not None:
            return closed
        existing = await self._execute(
            select(PositionModel.status).where(PositionModel.id == position_id)
        )
        current = existing.scalar()
        if current is None:
            raise NotFoundError(f"no position with id {position_id}")
        raise ConflictError(f"position {position_id} is already {current}")

    async def mark_to_market(self, symbol: str, price: Decimal, exchange: str = "binance") -> int:
        """Revalue every open position on ``symbol`` at ``price`` in one statement.

        Returns:
            How many positions were updated.
        """
        statement = (
            update(PositionModel)
            .where(_IS_OPEN, PositionModel.symbol == symbol, PositionModel.exchange == exchange)
            .values(_marked_values(_PRICE(price)) | touched(PositionModel))
        )
        result = await self._write(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]


def _marked_values(price: Decimal) -> dict[str, ColumnElement[Any]]:
    """Current price, unrealized PnL (price move × quantity, sign by side) and its percentage
    of the margin, as SQL on the row's own columns."""
    money = PositionModel.entry_price.type
    long_move = dec_sub(_literal(price, money), PositionModel.entry_price)
    short_move = dec_sub(PositionModel.entry_price, _literal(price, money))
    move = case((PositionModel.side == Side.LONG.value, long_move), else_=short_move)
    pnl = dec_round(dec_mul(move, PositionModel.quantity), 8)
    return {
        "current_price": _literal(price, money),
        "unrealized_pnl": pnl,
        "unrealized_pnl_pct": dec_round(
            dec_mul(dec_div(pnl, PositionModel.margin), _literal(Decimal(100), money)), 4
        ),
    }


def _literal(value: Decimal, type_: Any) -> ColumnElement[Any]:
    return literal(value, type_)
