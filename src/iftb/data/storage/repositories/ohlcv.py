"""OHLCVRepository: candle ingest, reads and gap detection (issue #3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from iftb.data.storage.records import Gap, OHLCVBar
from iftb.data.storage.repositories.base import Repository


class OHLCVRepository(Repository):
    """Candles per (symbol, exchange, timeframe, timestamp)."""

    async def insert_many(self, bars: Sequence[OHLCVBar]) -> int:
        raise NotImplementedError

    async def upsert_many(self, bars: Sequence[OHLCVBar]) -> int:
        raise NotImplementedError

    async def get_range(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, exchange: str = "binance"
    ) -> list[OHLCVBar]:
        raise NotImplementedError

    async def get_latest(
        self, symbol: str, timeframe: str, limit: int = 100, exchange: str = "binance"
    ) -> list[OHLCVBar]:
        raise NotImplementedError

    async def get_gaps(
        self,
        symbol: str,
        timeframe: str,
        exchange: str = "binance",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Gap]:
        raise NotImplementedError
