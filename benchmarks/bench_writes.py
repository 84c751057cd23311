"""insert_many and upsert_many against the raw driver's bulk writes.

The OHLCVBar records are built (and so validated) before the clock starts, as a caller would
have them; the timer covers the repository call and the commit of its unit of work. The raw side
gets the same rows already in its driver's form and commits too. Every repetition starts from the
same table state: empty for inserts, the "existing" half stored for upserts.

On SQLite a third side is timed for context: the raw executemany converting Decimals and
datetimes to their stored text inside its timer, as the library must.
"""

from __future__ import annotations

from dataclasses import replace

from benchmarks.candles import BATCH_SYMBOL, NativeRow, bars, native_rows
from benchmarks.config import Sizes
from benchmarks.databases import Database
from benchmarks.raw_driver import DriverRow
from benchmarks.results import BackendResults, Figure, ratio_target
from benchmarks.targets import RATIO_TARGETS, write_baseline
from benchmarks.timing import Action, Case, Samples, compare
from iftb.data.storage import OHLCVBar, OHLCVRepository

SYMBOL = BATCH_SYMBOL
_WARM_UP_ROWS = 1_000


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    """Measure insert_many, then upsert_many; check both sides stored the same rows."""
    native = list(native_rows(SYMBOL, 0, sizes.rows))
    await _warm_up(db, bars(native[:_WARM_UP_ROWS]), db.raw.candle_rows(native[:_WARM_UP_ROWS]))
    insert = await _measure(db, sizes, out, "insert_many", native, db.raw.clear_candles)
    half = sizes.rows // 2
    stored_before = db.raw.candle_rows(native_rows(SYMBOL, 0, half))

    async def half_stored() -> None:
        await db.raw.clear_candles()
        await db.raw.insert(stored_before)

    changed = [
        *native_rows(SYMBOL, 0, half, revision=1),  # existing keys, changed values
        *native_rows(SYMBOL, half, sizes.rows - half),  # new keys
    ]
    upsert = await _measure(db, sizes, out, "upsert_many", changed, half_stored)
    await db.raw.clear_candles()
    out.figures += [insert, upsert]
    if db.backend == "postgresql":
        out.figures.append(_against_plain_copy(insert, upsert))


async def _measure(
    db: Database,
    sizes: Sizes,
    out: BackendResults,
    operation: str,
    native: list[NativeRow],
    setup: Action,
) -> Figure:
    records = bars(native)
    driver_rows = db.raw.candle_rows(native)
    upsert = operation == "upsert_many"

    async def library() -> None:
        async with db.manager.get_session() as session:
            repository = OHLCVRepository(session)
            await (repository.upsert_many(records) if upsert else repository.insert_many(records))

    async def raw() -> None:
        await (db.raw.upsert(driver_rows) if upsert else db.raw.insert(driver_rows))

    async def raw_converting() -> None:
        rows = db.raw.candle_rows(native)
        await (db.raw.upsert(rows) if upsert else db.raw.insert(rows))

    cases = [Case(library, setup), Case(raw, setup)]
    if db.backend == "sqlite":
        cases.append(Case(raw_converting, setup))
    library_samples, raw_samples, *converting = await compare(sizes.repetitions, *cases)
    out.checks.append(await _same_rows(db, operation, library, raw, setup))
    figure = _figure(db.backend, operation, sizes.rows, library_samples, raw_samples)
    if converting:
        rate = sizes.rows / converting[0].median
        ratio = converting[0].median / library_samples.median
        figure = replace(
            figure,
            note=f"raw executemany converting Decimals/datetimes inside its timer: "
            f"{rate:,.0f} rows/s; the library reaches {ratio:.2f}× of that",
        )
    return figure


def _against_plain_copy(insert: Figure, upsert: Figure) -> Figure:
    """The stricter reading of the upsert target: against a raw plain COPY of N new rows."""
    assert insert.baseline is not None
    baseline = "raw plain COPY"
    ratio = insert.baseline.median / upsert.library.median
    return Figure(
        "upsert_many, against plain COPY",
        upsert.rows,
        upsert.library,
        insert.baseline,
        baseline,
        ratio_target(RATIO_TARGETS[("postgresql", "upsert_many")], baseline, ratio),
        note="the same upsert timings, set against a raw COPY insert of N new rows "
        "(the stricter reading of the upsert target)",
    )


async def _warm_up(db: Database, records: list[OHLCVBar], driver_rows: list[DriverRow]) -> None:
    """One small write per path: connections, statement caches and the staging tables."""
    for upsert in (True, False):
        async with db.manager.get_session() as session:
            repository = OHLCVRepository(session)
            await (repository.upsert_many(records) if upsert else repository.insert_many(records))
        await db.raw.clear_candles()
        await (db.raw.upsert(driver_rows) if upsert else db.raw.insert(driver_rows))
        await db.raw.clear_candles()


async def _same_rows(
    db: Database, operation: str, library: Action, raw: Action, setup: Action
) -> str:
    """Whether the library and the raw side leave byte-identical candle rows behind."""
    await setup()
    await library()
    library_digest = await db.raw.digest()
    await setup()
    await raw()
    raw_digest = await db.raw.digest()
    verdict = "identical" if library_digest == raw_digest else "DIFFERENT (suspicious!)"
    return f"{operation}: rows stored by the library and by the raw driver are {verdict}"


def _figure(backend: str, operation: str, rows: int, library: Samples, raw: Samples) -> Figure:
    baseline = write_baseline(backend, operation)
    ratio = raw.median / library.median
    target = ratio_target(RATIO_TARGETS[(backend, operation)], baseline, ratio)
    return Figure(operation, rows, library, raw, baseline, target)
