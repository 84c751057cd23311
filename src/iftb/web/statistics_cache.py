"""Statistics already computed, kept while their scope's trades stay the same.

Exact statistics over a long backtest cost a scan of its trades (seconds on SQLite at 100k
trades, where the decimal sums are Python functions). The dashboard asks for the same figures on
every refresh, and most scopes (every finished backtest) never change again. An entry is kept
under the scope's trades revision (``ScopeRepository.trades_revision``, moved by the database's
triggers with every write of its trades), so it is served only while no trade of the scope was
written since: never stale, whatever the age.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")

ENTRIES = 512
"""Entries kept; the least recently used goes first (each is one statistics record)."""


class RevisionCache(Generic[Value]):
    """Values by key, each valid for one revision of what it was computed from."""

    def __init__(self, entries: int = ENTRIES) -> None:
        self._entries = entries
        self._values: OrderedDict[Hashable, tuple[int, Value]] = OrderedDict()

    async def get(
        self, key: Hashable, revision: int, compute: Callable[[], Awaitable[Value]]
    ) -> Value:
        """The value kept for ``key`` at ``revision``, or ``compute()``'s, kept from now on.

        ``revision`` must be read before ``compute`` runs: the value is then at least as new as
        the revision it is kept under."""
        kept = self._values.get(key)
        if kept is not None and kept[0] == revision:
            self._values.move_to_end(key)
            return kept[1]
        value = await compute()
        self._values[key] = (revision, value)
        self._values.move_to_end(key)
        if len(self._values) > self._entries:
            self._values.popitem(last=False)
        return value
