"""The naive ORM paths, for contrast: what the bulk paths of the library save its callers.

``session.add_all`` of ``OHLCVModel`` objects (the unit of work flushes them as batched INSERTs)
and the select-then-update upsert loop (one SELECT per candle, then an attribute update or an
add). Both on a smaller batch than the bulk figures, scaled to rows/s, against the same raw
writes of the same rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from benchmarks.candles import ORM_SYMBOL, NativeRow, native_rows
from benchmarks.config import Sizes
from benchmarks.databases import Database
from benchmarks.results import BackendResults, Figure
from benchmarks.sql import NATIVE_COLUMNS
from benchmarks.targets import write_baseline
from benchmarks.timing import Case, compare
from iftb.data.storage import OHLCVModel
from iftb.data.storage.repositories.market.candle_io import VALUE_COLUMNS

SYMBOL = ORM_SYMBOL


def model(row: NativeRow) -> OHLCVModel:
    return OHLCVModel(**dict(zip(NATIVE_COLUMNS, row, strict=True)))


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    """Measure both naive paths; the table is left empty."""
    out.figures.append(await _add_all(db, sizes))
    out.figures.append(await _select_then_update(db, sizes))
    await db.raw.clear_candles()


async def _add_all(db: Database, sizes: Sizes) -> Figure:
    native = list(native_rows(SYMBOL, 0, sizes.orm_rows))
    driver_rows = db.raw.candle_rows(native)
    pending: list[OHLCVModel] = []

    async def fresh_objects() -> None:  # ORM objects are single-use: new ones every time
        await db.raw.clear_candles()
        pending[:] = [model(row) for row in native]

    async def library() -> None:
        async with db.manager.get_session() as session:
            session.add_all(pending)

    async def raw() -> None:
        await db.raw.insert(driver_rows)

    orm, plain = await compare(
        sizes.repetitions, Case(library, fresh_objects), Case(raw, db.raw.clear_candles)
    )
    baseline = write_baseline(db.backend, "insert_many")
    return Figure("naive ORM (contrast): session.add_all", sizes.orm_rows, orm, plain, baseline)


async def _select_then_update(db: Database, sizes: Sizes) -> Figure:
    half = sizes.orm_rows // 2
    stored_before = db.raw.candle_rows(native_rows(SYMBOL, 0, half))
    native = [
        *native_rows(SYMBOL, 0, half, revision=1),
        *native_rows(SYMBOL, half, sizes.orm_rows - half),
    ]
    driver_rows = db.raw.candle_rows(native)

    async def half_stored() -> None:
        await db.raw.clear_candles()
        await db.raw.insert(stored_before)

    async def library() -> None:
        async with db.manager.get_session() as session:
            for row in native:
                values: dict[str, Any] = dict(zip(NATIVE_COLUMNS, row, strict=True))
                statement = select(OHLCVModel).where(
                    OHLCVModel.symbol == values["symbol"],
                    OHLCVModel.exchange == values["exchange"],
                    OHLCVModel.timeframe == values["timeframe"],
                    OHLCVModel.timestamp == values["timestamp"],
                )
                stored = (await session.execute(statement)).scalar_one_or_none()
                if stored is None:
                    session.add(OHLCVModel(**values))
                else:
                    for name in VALUE_COLUMNS:
                        setattr(stored, name, values[name])

    async def raw() -> None:
        await db.raw.upsert(driver_rows)

    orm, plain = await compare(
        sizes.repetitions, Case(library, half_stored), Case(raw, half_stored)
    )
    operation = "naive ORM (contrast): select-then-update upsert"
    baseline = write_baseline(db.backend, "upsert_many")
    return Figure(operation, sizes.orm_rows, orm, plain, baseline)
