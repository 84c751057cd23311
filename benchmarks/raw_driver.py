"""The raw-driver side of every comparison: the same work as the library, minus the library.

Each backend implements this with its bare driver (stdlib ``sqlite3``, asyncpg), on its own
connection to the same database the library uses, with the rows already in the form the driver
takes (converting them happens outside the timers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from benchmarks.candles import NativeRow

DriverRow = tuple[Any, ...]


class RawDriver(Protocol):
    """One bare-driver connection to the benchmark database."""

    backend: str

    def candle_rows(self, rows: Iterable[NativeRow]) -> list[DriverRow]:
        """Candles in the form the driver writes (untimed preparation)."""
        ...

    async def clear_candles(self) -> None: ...

    async def insert(self, rows: Sequence[DriverRow]) -> None:
        """Insert candles in one transaction (timed)."""
        ...

    async def upsert(self, rows: Sequence[DriverRow]) -> None:
        """Insert or update candles in one transaction (timed)."""
        ...

    async def load(self, rows: Iterable[NativeRow]) -> int:
        """Seed many candles as fast as the driver can (untimed); returns how many."""
        ...

    async def fetch_range(self, symbol: str, start: datetime, end: datetime) -> list[Any]:
        """The candles of ``[start, end]``, oldest first, as the driver returns them (timed)."""
        ...

    def stream_range(
        self, symbol: str, start: datetime, end: datetime, chunk_size: int
    ) -> AsyncIterator[Any]:
        """Like ``fetch_range``, read through a cursor ``chunk_size`` rows at a time."""
        ...

    async def fetch_timestamps(self, symbol: str) -> list[datetime]:
        """Every stored open time of a series as aware datetimes, oldest first (naive gaps)."""
        ...

    async def digest(self) -> str:
        """A hash of every stored candle's key and values (not ids or insertion times)."""
        ...

    async def load_trades(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Seed trades given in ``sql.TRADE_COLUMNS`` order, native values (untimed)."""
        ...

    async def execute(self, sql: str) -> None:
        """Run maintenance SQL (``DELETE``, ``ANALYZE``, …) outside any transaction."""
        ...

    async def close(self) -> None: ...
