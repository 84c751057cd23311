"""DailyPerformanceRepository: daily rollups and the equity curve (issue #4)."""

from __future__ import annotations

from iftb.data.storage.repositories.base import Repository


class DailyPerformanceRepository(Repository):
    """One row per (date, exchange)."""
