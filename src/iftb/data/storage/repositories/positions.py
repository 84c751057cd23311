"""PositionRepository: open and closed positions (issue #4)."""

from __future__ import annotations

from iftb.data.storage.records import Position
from iftb.data.storage.repositories.base import Repository


class PositionRepository(Repository):
    """Positions; at most one open per (symbol, exchange, side)."""

    async def get_open_positions(self, exchange: str = "binance") -> list[Position]:
        raise NotImplementedError

    async def get_position(self, symbol: str, exchange: str = "binance") -> Position | None:
        raise NotImplementedError

    async def update_position(self, position: Position) -> Position:
        raise NotImplementedError

    async def close_position(self, position_id: int) -> Position:
        raise NotImplementedError
