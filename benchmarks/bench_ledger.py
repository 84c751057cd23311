"""The futures ledger: fills recorded one at a time as a live bot does, and a history in bulk.

Two figures per backend, each against the raw driver (``raw_ledger``) in the same run:

- ``record_order`` / ``record_fill`` per event, each in its own unit of work
  (``db.manager.scope(...).session()``): ``Sizes.ledger_live_fills`` fills of a generated
  stream (``tests/ledger_stream.py``, 20 symbols × long/short) and their orders, in time
  order, into an empty ledger; the raw side does the floor of the same writes per event.
- ``record_history`` of a stream of ``Sizes.ledger_history_trades`` trades per series (330:
  about 100k fills) into an empty ledger; the raw side bulk-writes the rows it stores.

Runs inside the whole harness (``python -m benchmarks``) and by itself::

    .venv/bin/python -m benchmarks.bench_ledger --quick     # smoke run, prints the section
    .venv/bin/python -m benchmarks.bench_ledger             # full sizes; rewrites the "Futures
                                                            # ledger" section of the report
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from tests.ledger_stream import generate

from benchmarks import standalone
from benchmarks.config import Sizes
from benchmarks.databases import Database
from benchmarks.raw_ledger import (
    KEYS,
    MODELS,
    SCOPE,
    WRITTEN,
    RawLedger,
    raw_ledger,
    raw_steps,
    stored_rows,
)
from benchmarks.results import BackendResults, Figure, ratio_target
from benchmarks.standalone import TITLES, Module, samples_text
from benchmarks.timing import Case, compare
from iftb.data.storage import Fill, Order

SYMBOLS = 20
SEED = 13
BULK_TARGET = 0.5
"""record_history must reach this share of the raw driver's rows/s."""
LIVE = "LedgerRepository.record_fill, one unit of work per event"
BULK = "LedgerRepository.record_history"
RAW_LIVE = {"postgresql": "raw asyncpg", "sqlite": "raw sqlite3"}
RAW_BULK = {"postgresql": "raw COPY", "sqlite": "raw executemany"}


def live_events(fills: int) -> list[Order | Fill]:
    """The first ``fills`` fills of a stream over every series, with their orders, in the time
    order a live bot sees them (an order when placed, a fill when filled)."""
    stream = generate(SYMBOLS, fills // (SYMBOLS * 2 * 7) + 2, SEED)
    timed: list[tuple[datetime, Order | Fill]] = [(o.placed_at, o) for o in stream.orders]
    timed += [(fill.filled_at, fill) for fill in stream.fills]
    events: list[Order | Fill] = []
    for _, event in sorted(timed, key=lambda pair: pair[0]):
        events.append(event)
        fills -= isinstance(event, Fill)
        if not fills:
            break
    return events


async def native_rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """What the five tables hold of ``WRITTEN``, read through the library (Decimals, aware
    datetimes)."""
    rows = {}
    async with db.manager.get_session(read_only=True) as session:
        for table, model in MODELS.items():
            columns = model.__table__.c
            statement = select(*(columns[name] for name in WRITTEN[table])).order_by(
                *(columns[name] for name in KEYS[table])
            )
            rows[table] = [tuple(row) for row in await session.execute(statement)]
    return rows


def _same(what: str, library: Mapping[str, list[Any]], raw: Mapping[str, list[Any]]) -> str:
    """The check line for both sides' stored rows; raises when they differ."""
    counts = ", ".join(f"{len(rows):,} {table}" for table, rows in library.items())
    if library == raw:
        return f"{what}: the library and the raw driver stored identical rows ({counts})"
    for table in MODELS:
        if library[table] != raw[table]:
            mine, theirs = (
                next((a, b) for a, b in zip(library[table], raw[table], strict=False) if a != b)
                if len(library[table]) == len(raw[table])
                else (len(library[table]), len(raw[table]))
            )
            raise RuntimeError(f"{what}: {table} differ, e.g. {mine!r} against raw {theirs!r}")
    raise AssertionError("unreachable")


# --- the figures ----------------------------------------------------------------------------


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    """Time live recording, then bulk recording, each against the raw driver. Leaves the
    ledger tables empty."""
    raw = await raw_ledger(db)
    try:
        await _live(db, raw, sizes, out)
        await _bulk(db, raw, sizes, out)
    finally:
        await raw.clear()
        await raw.close()


async def _live(db: Database, raw: RawLedger, sizes: Sizes, out: BackendResults) -> None:
    events = live_events(sizes.ledger_live_fills)
    steps = raw_steps(events, db.backend)
    fills = sum(isinstance(event, Fill) for event in events)
    handle = db.manager.scope(SCOPE.bot, SCOPE.mode)

    async def library() -> None:
        for event in events:
            async with handle.session() as journal:
                if isinstance(event, Order):
                    await journal.ledger.record_order(event)
                else:
                    await journal.ledger.record_fill(event)

    async def raw_live() -> None:
        await raw.live(steps)

    # Untimed, once each (the warm-up): both sides must leave the same ledger.
    await raw.clear()
    await library()
    library_rows = await stored_rows(raw)
    await raw.clear()
    await raw_live()
    out.checks.append(_same("live recording", library_rows, await stored_rows(raw)))
    library_samples, raw_samples = await compare(
        sizes.repetitions, Case(library, raw.clear), Case(raw_live, raw.clear)
    )
    out.figures.append(
        Figure(
            LIVE,
            fills,
            library_samples,
            raw_samples,
            RAW_LIVE[db.backend],
            note=f"{fills:,} fills and {len(events) - fills:,} orders of 40 series, in time "
            "order, each in its own unit of work, into an empty ledger; rows/s is fills per "
            "second. The raw side writes the same rows with no reads and every value computed "
            "before the clock: the floor, not an alternative design. No target",
        )
    )


async def _bulk(db: Database, raw: RawLedger, sizes: Sizes, out: BackendResults) -> None:
    stream = generate(SYMBOLS, sizes.ledger_history_trades, SEED + 1)
    handle = db.manager.scope(SCOPE.bot, SCOPE.mode)

    async def library() -> None:
        async with handle.session() as journal:
            counts = await journal.ledger.record_history(
                stream.orders, stream.fills, stream.funding
            )
        if counts.fills != len(stream.fills):
            raise RuntimeError(f"record_history wrote {counts.fills} of {len(stream.fills)} fills")

    await raw.clear()
    await library()  # the warm-up, and what the raw side writes
    native = await native_rows(db)
    library_rows = await stored_rows(raw)
    prepared = {table: raw.prepare(table, rows) for table, rows in native.items()}
    await raw.clear()
    await raw.bulk(prepared, convert=False)
    out.checks.append(_same("record_history", library_rows, await stored_rows(raw)))

    async def raw_write() -> None:
        await raw.bulk(prepared, convert=False)

    async def converting_write() -> None:
        await raw.bulk(native, convert=True)

    cases = [Case(library, raw.clear), Case(raw_write, raw.clear)]
    if db.backend == "sqlite":  # sqlite3 cannot bind a Decimal: a raw caller converts too
        cases.append(Case(converting_write, raw.clear))
    library_samples, raw_samples, *converting = await compare(sizes.repetitions, *cases)
    rows = sum(len(table_rows) for table_rows in native.values())
    fills = len(stream.fills)
    baseline = RAW_BULK[db.backend]
    note = (
        f"{len(stream.fills):,} fills, {len(stream.orders):,} orders, {len(stream.funding):,} "
        f"funding payments of 40 series into an empty ledger: {rows:,} rows in the five tables "
        "(trades and positions included); rows/s is fills per second. The records are built "
        "before the clock; the raw side writes the rows that history stores, read back "
        "beforehand"
    )
    if converting:
        seconds = converting[0].median
        note += (
            f"; raw executemany converting Decimals/datetimes inside its timer: {seconds:.3f} s, "
            f"the library reaches {seconds / library_samples.median:.2f}× of that"
        )
    ratio = raw_samples.median / library_samples.median
    out.figures.append(
        Figure(
            BULK,
            fills,
            library_samples,
            raw_samples,
            baseline,
            ratio_target(BULK_TARGET, baseline, ratio),
            note=note,
        )
    )


# --- the "Futures ledger" section of docs/performance.md ------------------------------------

HEADING = "## Futures ledger"


def measured(results: Sequence[BackendResults]) -> bool:
    """Whether ``results`` hold ledger figures (not on an existing database)."""
    return any(figure.operation == BULK for result in results for figure in result.figures)


def _figures(results: Sequence[BackendResults], operation: str) -> list[tuple[str, Figure]]:
    return [
        (TITLES[result.backend], figure)
        for result in results
        if not result.skipped
        for figure in result.figures
        if figure.operation == operation and figure.baseline is not None
    ]


def section(results: Sequence[BackendResults], provenance: str) -> list[str]:
    """The report's "Futures ledger" section from the figures of ``results``."""
    lines = [
        HEADING,
        "",
        provenance,
        "",
        "**Recording one event at a time, as a live bot does**: `record_order` for each order "
        "and `record_fill` for each fill of a generated stream (`tests/ledger_stream.py`: 20 "
        "symbols × long/short, scale-ins, partial closes, liquidations), in time order, each "
        'in its own unit of work (`db.scope("bench", "live").session()`), into an empty ledger. '
        "The raw driver does the floor of the same writes, each event in its own transaction: "
        "an order is one INSERT; a fill an INSERT of the fill with its order's id, an UPDATE of "
        "the order's filled quantity, average price and status, an upsert of the trade (ON "
        "CONFLICT on uq_trades_scope_trade_id) and an INSERT, or UPDATE by id, of its position, "
        "every value computed before the clock (no reads). No target; seconds are the median "
        "[fastest – slowest] of the repetitions.",
        "",
        "| Backend | Fills | Library s | Library fills/s | Raw s (driver) | Raw fills/s | Ratio |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for title, figure in _figures(results, LIVE):
        assert figure.baseline is not None
        lines.append(
            f"| {title} | {figure.rows:,} | {samples_text(figure.library)} | "
            f"{figure.library_rate:,.0f} | {samples_text(figure.baseline)} "
            f"({figure.baseline_name}) | {figure.baseline_rate or 0:,.0f} | "
            f"{figure.ratio or 0:.2f}× |"
        )
    lines += [
        "",
        "**Bulk recording of a history**: `record_history(orders, fills, funding)` of a whole "
        "stream in one call into an empty ledger, against the raw driver writing the rows that "
        "history stores (read back once, untimed): orders, their ids read back, fills with "
        f"their order ids, funding, trades, positions; target ≥ {BULK_TARGET:g}× raw rows/s.",
        "",
        "| Backend | Fills | record_history s | Raw s (driver) | Ratio | Met? |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for title, figure in _figures(results, BULK):
        assert figure.baseline is not None
        met = (
            "—"
            if figure.target is None
            else {True: "**yes**", False: "**NO**", None: "n/a"}[figure.target.met]
        )
        lines.append(
            f"| {title} | {figure.rows:,} | "
            f"{samples_text(figure.library)} | {samples_text(figure.baseline)} "
            f"({figure.baseline_name}) | {figure.ratio or 0:.2f}× | {met} |"
        )
    notes = [f"- {title}: {figure.note}" for title, figure in _figures(results, BULK)]
    lines += ["", *notes] if notes else []
    for result in results:
        if result.skipped:
            lines.append(f"\n{TITLES[result.backend]} was skipped: {result.skipped}.")
    checks = [
        f"- {TITLES[result.backend]}: {check}"
        for result in results
        for check in result.checks
        if check.startswith(("live recording", "record_history"))
    ]
    if checks:
        lines += ["", "Sanity checks (done outside the timers):", "", *checks]
    return [*lines, ""]


# --- by itself: python -m benchmarks.bench_ledger -------------------------------------------

MODULE = Module(
    "bench_ledger",
    "futures ledger",
    HEADING,
    "Futures ledger only: fills recorded one at a time and a history in bulk, each against the "
    "raw driver; rewrites the Futures ledger section of the report.",
    run,
    section,
)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone.main(MODULE, argv)


if __name__ == "__main__":
    raise SystemExit(main())
