"""get_range against the raw driver's plain fetch of the same rows.

The library returns validated-on-write, trusted ``OHLCVBar`` records (Decimals, aware UTC
datetimes); the raw side returns what its driver gives: asyncpg Records with Decimals and
datetimes, or sqlite3 tuples of text that nobody has parsed yet — so on SQLite a third side is
timed for context: the raw fetchall parsing that text into Decimals and datetimes.
"""

from __future__ import annotations

from benchmarks.candles import BATCH_SYMBOL, STEP, T0, TIMEFRAME, native_rows
from benchmarks.config import Sizes
from benchmarks.databases import Database, refresh_statistics
from benchmarks.raw_sqlite import parsed_row
from benchmarks.results import BackendResults, Figure, ratio_target
from benchmarks.targets import RATIO_TARGETS, read_baseline
from benchmarks.timing import Case, compare
from iftb.data.storage import OHLCVRepository

SYMBOL = BATCH_SYMBOL


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    """Store ``sizes.rows`` candles, then time reading all of them back."""
    await db.raw.clear_candles()
    await db.raw.load(native_rows(SYMBOL, 0, sizes.rows))
    await refresh_statistics(db)
    start, end = T0, T0 + STEP * (sizes.rows - 1)
    counts: dict[str, int] = {}

    async def library() -> None:
        async with db.manager.get_session() as session:
            candles = await OHLCVRepository(session).get_range(SYMBOL, TIMEFRAME, start, end)
        counts["library"] = len(candles)

    async def raw() -> None:
        counts["raw"] = len(await db.raw.fetch_range(SYMBOL, start, end))

    async def raw_parsing() -> None:
        rows = await db.raw.fetch_range(SYMBOL, start, end)
        counts["raw parsing"] = len([parsed_row(row) for row in rows])

    cases = [Case(library), Case(raw)]
    if db.backend == "sqlite":
        cases.append(Case(raw_parsing))
    for case in cases:
        await case.action()
    library_samples, raw_samples, *parsing = await compare(sizes.repetitions, *cases)
    if set(counts.values()) != {sizes.rows}:
        raise RuntimeError(f"get_range read {counts}, expected {sizes.rows} each")
    await db.raw.clear_candles()
    baseline = read_baseline(db.backend)
    ratio = raw_samples.median / library_samples.median
    target = ratio_target(RATIO_TARGETS[(db.backend, "get_range")], baseline, ratio)
    note = ""
    if parsing:
        rate = sizes.rows / parsing[0].median
        ratio = parsing[0].median / library_samples.median
        note = (
            f"raw fetchall parsing the text into Decimals/datetimes inside its timer: "
            f"{rate:,.0f} rows/s; the library reaches {ratio:.2f}× of that"
        )
    out.figures.append(
        Figure("get_range", sizes.rows, library_samples, raw_samples, baseline, target, note)
    )
