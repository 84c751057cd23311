"""TradeRepository: the trade journal and its statistics (issue #4)."""

from __future__ import annotations

from typing import Any

from iftb.data.storage.records import Trade, TradeStatistics
from iftb.data.storage.repositories.base import Repository


class TradeRepository(Repository):
    """Trades from entry to exit."""

    async def insert(self, trade: Trade) -> int:
        raise NotImplementedError

    async def update(self, trade_id: int, **fields: Any) -> Trade:
        raise NotImplementedError

    async def get_by_id(self, id: int) -> Trade | None:
        raise NotImplementedError

    async def get_recent(self, limit: int = 100) -> list[Trade]:
        raise NotImplementedError

    async def get_by_symbol(
        self, symbol: str, limit: int = 100, exchange: str = "binance"
    ) -> list[Trade]:
        raise NotImplementedError

    async def get_statistics(self, days: int = 30, exchange: str = "binance") -> TradeStatistics:
        raise NotImplementedError
