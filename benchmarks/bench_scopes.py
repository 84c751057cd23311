"""Scopes: a backtest's bulk trade write, and one scope's statistics among many scopes.

Two figures per backend, both in the same run as their baseline:

- ``BacktestRunRepository.record_trades`` of a whole backtest (``Sizes.scope_trades`` trades,
  100k by default) against the raw driver writing the same rows into ``trades``: asyncpg binary
  COPY (``copy_records_to_table``) on PostgreSQL, one stdlib ``sqlite3`` ``executemany`` of the
  values in their stored form on SQLite. The raw rows are prepared before the clock (the raw
  side's run is started, untimed, like the library's); the library validates, stamps the scope
  and converts inside its timer. Every repetition starts from an empty trades table.
- ``TradeRepository(session, Scope(bot, mode)).get_statistics`` of one scope while the journal
  holds trades of ``SCOPES`` scopes (10 bots × live/paper), first ``Sizes.scope_trades`` trades
  in all, then ``Sizes.scope_trades_large`` (1M): how one scope's statistics grow with the
  journal. The trades are seeded with the raw driver (COPY / executemany), not timed. There is
  no raw baseline: the statistics are set-based SQL either way.

Runs inside the whole harness (``python -m benchmarks``) and by itself::

    .venv/bin/python -m benchmarks.bench_scopes --quick     # smoke run, prints the section
    .venv/bin/python -m benchmarks.bench_scopes             # full sizes; rewrites the "Scopes"
                                                            # section of docs/performance.md
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks import standalone
from benchmarks.bench_trades import closed_trades
from benchmarks.config import Sizes
from benchmarks.databases import Database
from benchmarks.raw_driver import DriverRow
from benchmarks.raw_sqlite import stored_form
from benchmarks.results import BackendResults, Figure, ratio_target
from benchmarks.sql import TRADE_COLUMNS
from benchmarks.standalone import TITLES as _TITLES
from benchmarks.standalone import Module, samples_text
from benchmarks.timing import Case, compare, repeat
from iftb.data.storage import BacktestRunRepository, Scope, Trade, TradeRepository
from iftb.data.storage.engine import SQLITE_PRAGMAS
from iftb.data.storage.models import TradeModel

SCOPES = tuple(Scope(f"bench-{bot:02d}", mode) for bot in range(10) for mode in ("live", "paper"))
"""The scopes the statistics trades are spread over, evenly."""
MEASURED = SCOPES[7]
"""The scope whose statistics are timed."""
RECORD_TARGET = 0.5
"""record_trades must reach this share of the raw driver's rows/s."""
STATISTICS_DAYS = 3650
"""Wide enough that every seeded trade (all closed yesterday) counts."""

RECORD = "BacktestRunRepository.record_trades"
STATISTICS = "TradeRepository.get_statistics, one scope of"
RAW_WRITE = {"postgresql": "raw COPY", "sqlite": "raw executemany"}
RUN_COLUMNS = (*TRADE_COLUMNS, "bot", "mode", "run_id")
"""What the raw side writes for a backtest trade (the rest take their defaults, NULL)."""
SCOPE_COLUMNS = (*TRADE_COLUMNS, "bot", "mode")
"""What the seeding writes for a live or paper trade."""
_LOAD_CHUNK = 50_000


class RawTrades(Protocol):
    """The raw driver's side: its own connection to the benchmark database."""

    def prepare(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[DriverRow]:
        """Native values into the form the driver writes (untimed)."""
        ...

    async def write(self, columns: Sequence[str], rows: Sequence[DriverRow]) -> None:
        """Insert prepared rows into ``trades`` in one transaction (timed)."""
        ...

    async def seed(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many native rows as fast as the driver can (untimed)."""
        ...

    async def run_rows(self, run_id: int) -> list[tuple[Any, ...]]:
        """The stored values of a run's trades (``RUN_COLUMNS`` but the run), by trade id."""
        ...

    async def execute(self, sql: str) -> None: ...

    async def close(self) -> None: ...


_RUN_ROWS = (
    f"SELECT {', '.join(RUN_COLUMNS[:-1])} FROM trades WHERE run_id = {{}} ORDER BY trade_id"  # noqa: S608
)


class RawPostgresTrades:
    """Bare asyncpg: binary COPY, like the library's bulk path."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, url: str) -> RawPostgresTrades:
        raw_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(
            raw_url, server_settings={"application_name": "iftb-bench-raw", "timezone": "UTC"}
        )
        return cls(connection)

    def prepare(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[DriverRow]:
        return [tuple(row) for row in rows]

    async def write(self, columns: Sequence[str], rows: Sequence[DriverRow]) -> None:
        async with self._connection.transaction():
            await self._connection.copy_records_to_table(
                "trades", records=rows, columns=list(columns)
            )

    async def seed(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        await self.write(columns, self.prepare(columns, rows))

    async def run_rows(self, run_id: int) -> list[tuple[Any, ...]]:
        rows = await self._connection.fetch(_RUN_ROWS.format("$1"), run_id)
        return [tuple(row) for row in rows]

    async def execute(self, sql: str) -> None:
        await self._connection.execute(sql)

    async def close(self) -> None:
        await self._connection.close()


class RawSQLiteTrades:
    """Bare ``sqlite3``: the library's pragmas, values in their stored form."""

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None)
        for pragma, value in SQLITE_PRAGMAS.items():
            self._connection.execute(f"PRAGMA {pragma} = {value}")

    def prepare(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[DriverRow]:
        convert = stored_form(TradeModel.__table__, columns)
        return [convert(row) for row in rows]

    async def write(self, columns: Sequence[str], rows: Sequence[DriverRow]) -> None:
        marks = ", ".join("?" * len(columns))
        statement = f"INSERT INTO trades ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        self._connection.execute("BEGIN")
        try:
            self._connection.executemany(statement, rows)
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    async def seed(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        iterator = iter(rows)
        while chunk := self.prepare(columns, islice(iterator, _LOAD_CHUNK)):
            await self.write(columns, chunk)

    async def run_rows(self, run_id: int) -> list[tuple[Any, ...]]:
        cursor = self._connection.execute(_RUN_ROWS.format("?"), (run_id,))
        return [tuple(row) for row in cursor]

    async def execute(self, sql: str) -> None:
        self._connection.executescript(sql)

    async def close(self) -> None:
        self._connection.close()


async def raw_trades(db: Database) -> RawTrades:
    if db.backend == "postgresql":
        return await RawPostgresTrades.connect(db.url)
    return RawSQLiteTrades(db.url.split(":///", 1)[1])


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    """Time record_trades against the raw bulk write, then one scope's statistics at two
    journal sizes. Leaves the statistics trades stored."""
    raw = await raw_trades(db)
    try:
        await _record_trades(db, raw, sizes, out)
        await _statistics(db, raw, sizes, out)
    finally:
        await raw.close()


async def _clear(db: Database, raw: RawTrades) -> None:
    await raw.execute("TRUNCATE trades" if db.backend == "postgresql" else "DELETE FROM trades")


async def _analyze(db: Database, raw: RawTrades) -> None:
    """What autovacuum would have done by now after a bulk load."""
    await raw.execute("VACUUM ANALYZE trades" if db.backend == "postgresql" else "ANALYZE trades")


async def _start_run(db: Database, day: date) -> int:
    opens = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    async with db.manager.get_session() as session:
        started = await BacktestRunRepository(session).start(
            "bench-backtest",
            "bulk-write",
            timeframe="1h",
            data_start=opens - timedelta(days=1),
            data_end=opens + timedelta(days=1),
        )
    return started.id


async def _record_trades(db: Database, raw: RawTrades, sizes: Sizes, out: BackendResults) -> None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    native = list(closed_trades(sizes.scope_trades, day))
    trades = [Trade(**dict(zip(TRADE_COLUMNS, row, strict=True))) for row in native]
    state: dict[str, Any] = {}

    async def library_setup() -> None:
        await _clear(db, raw)
        state["library_run"] = await _start_run(db, day)

    async def library() -> None:
        async with db.manager.get_session() as session:
            written = await BacktestRunRepository(session).record_trades(
                state["library_run"], trades
            )
        if written != len(trades):
            raise RuntimeError(f"record_trades wrote {written} of {len(trades)} trades")

    async def raw_setup() -> None:
        await _clear(db, raw)
        run_id = await _start_run(db, day)
        state["raw_run"] = run_id
        state["raw_rows"] = raw.prepare(
            RUN_COLUMNS, ((*row, "bench-backtest", "backtest", run_id) for row in native)
        )

    async def raw_write() -> None:
        await raw.write(RUN_COLUMNS, state["raw_rows"])

    async def converting_setup() -> None:
        await _clear(db, raw)
        run_id = await _start_run(db, day)
        state["native_rows"] = [(*row, "bench-backtest", "backtest", run_id) for row in native]

    async def converting_write() -> None:
        await raw.write(RUN_COLUMNS, raw.prepare(RUN_COLUMNS, state["native_rows"]))

    cases = [Case(library, library_setup), Case(raw_write, raw_setup)]
    if db.backend == "sqlite":  # the stored text form costs SQLite's raw side too, if timed
        cases.append(Case(converting_write, converting_setup))
    await library_setup()  # warm-up: compiled statements, connections, the run's checks
    await library()
    library_samples, raw_samples, *converting = await compare(sizes.repetitions, *cases)
    # Outside the timers: both sides, once more, side by side, must store the same values.
    await library_setup()
    await library()
    library_run = state["library_run"]
    state["raw_run"] = await _start_run(db, day)
    await raw.write(
        RUN_COLUMNS,
        raw.prepare(
            RUN_COLUMNS,
            ((*row, "bench-backtest", "backtest", state["raw_run"]) for row in native),
        ),
    )
    stored = await raw.run_rows(library_run)
    raw_stored = await raw.run_rows(state["raw_run"])
    if len(stored) != sizes.scope_trades or len(raw_stored) != sizes.scope_trades:
        raise RuntimeError(f"record_trades stored {len(stored)} trades, raw {len(raw_stored)}")
    if stored == raw_stored:
        out.checks.append(
            f"record_trades: the {sizes.scope_trades:,} trades stored by the library and by the "
            "raw driver are identical (scope columns included)"
        )
    elif [_values(row) for row in stored] == [_values(row) for row in raw_stored]:
        library_row, raw_row = next(
            (a, b) for a, b in zip(stored, raw_stored, strict=True) if a != b
        )
        differing = [
            f"{name} {a!r} (raw/insert {b!r})"
            for name, a, b in zip(RUN_COLUMNS, library_row, raw_row, strict=False)
            if a != b
        ]
        out.checks.append(
            f"record_trades: the {sizes.scope_trades:,} trades are equal in value to the raw "
            "driver's, but NOT stored in the same text form as TradeRepository.insert stores "
            f"them: e.g. {', '.join(differing[:4])}"
        )
    else:
        raise RuntimeError("record_trades and the raw bulk write stored different trades")
    baseline = RAW_WRITE[db.backend]
    ratio = raw_samples.median / library_samples.median
    note = (
        "one backtest run's trades in one call; the Trade records are built before the clock, "
        "record_trades validates, stamps the scope and converts inside it"
    )
    if converting:
        seconds = converting[0].median
        note += (
            f"; raw executemany converting Decimals/datetimes inside its timer: {seconds:.3f} s "
            f"({sizes.scope_trades / seconds:,.0f} rows/s), the library reaches "
            f"{seconds / library_samples.median:.2f}× of that. sqlite3 cannot bind a Decimal, so "
            "a raw driver given these Trade rows converts them as well: that is the like-for-like "
            "figure; against values converted before the clock, the library's own validation "
            "and conversion cost more than the whole raw write, so 0.5× is out of reach there"
        )
    out.figures.append(
        Figure(
            RECORD,
            sizes.scope_trades,
            library_samples,
            raw_samples,
            baseline,
            ratio_target(RECORD_TARGET, baseline, ratio),
            note=note,
        )
    )
    await _clear(db, raw)


def _values(row: Sequence[Any]) -> tuple[Any, ...]:
    """A stored row with SQLite's decimal and timestamp text parsed (value, not form)."""
    parsed: list[Any] = []
    for value in row:
        if isinstance(value, str) and value and value[0] in "-0123456789":
            try:
                parsed.append(Decimal(value))
                continue
            except (ArithmeticError, ValueError):
                pass
            try:
                parsed.append(datetime.fromisoformat(value))
                continue
            except ValueError:
                pass
        parsed.append(value)
    return tuple(parsed)


def _scope_rows(scope: Scope, first: int, last: int, per_scope: int) -> Iterator[tuple[Any, ...]]:
    """Trades ``first`` to ``last`` (exclusive) of the scope's series of ``per_scope``."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    for row in islice(closed_trades(per_scope, day), first, last):
        yield (*row, scope.bot, scope.mode)


async def _statistics(db: Database, raw: RawTrades, sizes: Sizes, out: BackendResults) -> None:
    await _clear(db, raw)
    per_scope_large = sizes.scope_trades_large // len(SCOPES)
    stored = 0
    counted: list[int] = []
    for total in (sizes.scope_trades, sizes.scope_trades_large):
        per_scope = total // len(SCOPES)
        for scope in SCOPES:  # the series of the large size, so the small one is its prefix
            await raw.seed(SCOPE_COLUMNS, _scope_rows(scope, stored, per_scope, per_scope_large))
        stored = per_scope
        await _analyze(db, raw)
        counted.clear()

        async def statistics() -> None:
            async with db.manager.get_session(read_only=True) as session:
                found = await TradeRepository(session, MEASURED).get_statistics(
                    days=STATISTICS_DAYS, exchange="binance"
                )
            counted.append(found.total_trades)

        await statistics()  # warm-up
        samples = await repeat(sizes.repetitions, Case(statistics))
        if set(counted) != {per_scope}:
            raise RuntimeError(f"get_statistics of {MEASURED} counted {counted}, not {per_scope}")
        out.figures.append(
            Figure(
                f"{STATISTICS} {len(SCOPES)} ({per_scope * len(SCOPES):,} trades stored)",
                per_scope,
                samples,
                None,
                note=f"scope {MEASURED}: its {per_scope:,} trades among "
                f"{per_scope * len(SCOPES):,}; rows/s is the scope's trades per second",
            )
        )
    out.checks.append(
        f"get_statistics of scope {MEASURED} counted exactly its own trades at both sizes "
        f"({sizes.scope_trades // len(SCOPES):,} and {per_scope_large:,})"
    )


# --- the "Scopes" section of docs/performance.md -------------------------------------------


def measured(results: Sequence[BackendResults]) -> bool:
    """Whether ``results`` hold scopes figures (not on an existing database)."""
    return any(figure.operation == RECORD for result in results for figure in result.figures)


def section(results: Sequence[BackendResults], provenance: str) -> list[str]:
    """The report's "Scopes" section from the figures of ``results``."""
    lines = ["## Scopes", "", provenance, ""]
    measured = [result for result in results if not result.skipped]
    lines += [
        f"**Bulk backtest write**: `BacktestRunRepository.record_trades` against the raw driver "
        f"writing the same rows, target ≥ {RECORD_TARGET:g}× raw rows/s; seconds are the median "
        "[fastest – slowest] of the repetitions.",
        "",
        "| Backend | Trades | record_trades s | Raw s (driver) | Ratio | Met? |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for result in measured:
        for figure in result.figures:
            if figure.operation != RECORD or figure.baseline is None:
                continue
            met = "—"
            if figure.target is not None:
                met = {True: "**yes**", False: "**NO**", None: "n/a"}[figure.target.met]
            lines.append(
                f"| {_TITLES[result.backend]} | {figure.rows:,} | {samples_text(figure.library)} | "
                f"{samples_text(figure.baseline)} ({figure.baseline_name}) | "
                f"{figure.ratio or 0:.2f}× | {met} |"
            )
    notes = [
        f"- {_TITLES[result.backend]}: {figure.note}"
        for result in measured
        for figure in result.figures
        if figure.operation == RECORD and "converting" in figure.note
    ]
    if notes:
        lines += ["", *notes]
    lines += [
        "",
        f"**Statistics of one scope among {len(SCOPES)}** (10 bots × live/paper, trades spread "
        f"evenly): `TradeRepository(session, Scope({MEASURED.bot!r}, {MEASURED.mode!r}))"
        f".get_statistics(days={STATISTICS_DAYS})`, every trade in range.",
        "",
        "| Backend | Trades stored | The scope's trades | get_statistics s | Growth |",
        "|---|--:|--:|--:|--:|",
    ]
    for result in measured:
        figures = [f for f in result.figures if f.operation.startswith(STATISTICS)]
        first = figures[0].library.median if figures else 0.0
        for figure in figures:
            growth = figure.library.median / first if first else 0.0
            lines.append(
                f"| {_TITLES[result.backend]} | {figure.rows * len(SCOPES):,} | "
                f"{figure.rows:,} | {samples_text(figure.library)} | ×{growth:.1f} |"
            )
    for result in results:
        if result.skipped:
            lines.append(f"\n{_TITLES[result.backend]} was skipped: {result.skipped}.")
    checks = [
        f"- {_TITLES[result.backend]}: {check}"
        for result in measured
        for check in result.checks
        if check.startswith(("record_trades", "get_statistics of scope"))
    ]
    lines += [
        "",
        "Growth is the time over the smallest size's. The scope holds a fixed share (1/20) of "
        "the journal, so its own trades grow as fast as the journal. Each of the statistics' "
        "queries finds the scope's rows through the partial index ix_trades_scope_exit_time "
        "(bot, mode, exit_time, id; a run's scope, ix_trades_run_exit_time) on both backends "
        "(EXPLAIN), so the time follows the scope's own "
        "trades (roughly linear in them), not the other scopes'. The trades were seeded with "
        "the raw driver (COPY / executemany), all closed on one day, and the table analyzed "
        "before timing; on SQLite the exact decimal aggregates are Python functions, so they "
        "cost per row.",
        "",
    ]
    if checks:
        lines += ["Sanity checks (done outside the timers):", "", *checks, ""]
    return lines


# --- by itself: python -m benchmarks.bench_scopes -------------------------------------------

MODULE = Module(
    "bench_scopes",
    "scopes",
    "## Scopes",
    "Scopes only: record_trades against the raw bulk write, and one scope's get_statistics "
    "among 20; rewrites the Scopes section of the report.",
    run,
    section,
)


def main(argv: Sequence[str] | None = None) -> int:
    return standalone.main(MODULE, argv)


if __name__ == "__main__":
    raise SystemExit(main())
