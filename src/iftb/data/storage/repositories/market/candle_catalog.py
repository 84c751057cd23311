"""Checking the candle catalog against the candles, and rebuilding it from them.

The library keeps the catalog exact on every write; a write around it (raw SQL, a restored
dump, a partition dropped by hand) is what ``verify`` finds and ``rebuild`` mends. Both scan
every candle: O(rows), for maintenance, never for the everyday reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete

from iftb.data.storage.errors import translated_errors
from iftb.data.storage.market_models import CandleGapModel, CandleSeriesModel
from iftb.data.storage.records import Gap, SeriesCoverage
from iftb.data.storage.repositories.base import Repository
from iftb.data.storage.repositories.market.candle_sql import SeriesKey
from iftb.data.storage.repositories.market.catalog_upkeep import lock_every_series, refresh
from iftb.data.storage.repositories.market.ohlcv import OHLCVRepository


@dataclass(frozen=True, slots=True)
class CatalogDifference:
    """One figure of a series on which the catalog and the candles disagree."""

    series: SeriesKey
    field: str
    catalog: str
    scanned: str

    def __str__(self) -> str:
        key = self.series
        return (
            f"{key.symbol} {key.exchange} {key.timeframe} {key.price_type}: {self.field} is "
            f"{self.catalog} in the catalog, {self.scanned} in the candles"
        )


class CandleCatalogRepository(Repository):
    """``verify`` and ``rebuild`` the catalog that ``OHLCVRepository`` keeps."""

    async def verify(self) -> list[CatalogDifference]:
        """Every difference between the catalog and what scanning the candles computes: each
        series' span, counts and every run of missing candles. Empty when the catalog is
        exact."""
        candles = OHLCVRepository(self.session)
        scanned = {_key(entry): entry for entry in await candles.scan_coverage()}
        listed = {_key(entry): entry for entry in await candles.get_inventory()}
        differences = []
        for key in sorted(scanned.keys() | listed.keys()):
            stored, held = scanned.get(key), listed.get(key)
            for field in ("first", "last", "count", "missing"):
                found = "absent" if stored is None else str(getattr(stored, field))
                kept = "absent" if held is None else str(getattr(held, field))
                if found != kept:
                    differences.append(CatalogDifference(key, field, kept, found))
            if stored is None or held is None:
                continue
            series = (key.symbol, key.timeframe, key.exchange)
            found_gaps = await candles.scan_gaps(*series, price_type=key.price_type)
            kept_gaps = await candles.get_gaps(*series, price_type=key.price_type)
            if found_gaps != kept_gaps or held.gaps != len(found_gaps):
                differences.append(
                    CatalogDifference(
                        key,
                        "gaps",
                        f"{held.gaps} runs {_runs(kept_gaps)}",
                        f"{len(found_gaps)} runs {_runs(found_gaps)}",
                    )
                )
        return differences

    async def rebuild(self) -> int:
        """Recompute the whole catalog from the candles, in this unit of work; returns how many
        series it holds. Writers of candles wait until it is committed."""
        candles = OHLCVRepository(self.session)
        with translated_errors():
            async with self.session.begin_nested():
                connection = await self.session.connection()
                await lock_every_series(connection)
                stored = {_key(entry): entry for entry in await candles.scan_coverage()}
                await connection.execute(delete(CandleGapModel))
                await connection.execute(delete(CandleSeriesModel))
                await refresh(connection, {key: (e.first, e.last) for key, e in stored.items()})
        return len(stored)


def _key(entry: SeriesCoverage) -> SeriesKey:
    return SeriesKey(entry.symbol, entry.exchange, entry.timeframe, entry.price_type)


def _runs(gaps: list[Gap], shown: int = 3) -> str:
    listed = ", ".join(
        f"{g.start.isoformat()}..{g.end.isoformat()} ({g.missing})" for g in gaps[:shown]
    )
    more = f", … {len(gaps) - shown} more" if len(gaps) > shown else ""
    return f"[{listed}{more}]"
