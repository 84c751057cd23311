"""DataFrames: one series' candles into a pandas float64 frame, and a frame written back.

Figures per backend, each in the same run as its baselines, on the same stored rows:

- ``OHLCVRepository.get_frame`` of ``FRAME_ROWS`` (1M) candles of one series into a pandas
  DataFrame of float64 columns indexed by aware UTC open time, against (a) the user's route
  before it: ``get_range`` then ``pd.DataFrame.from_records`` of the records, the Decimals made
  float64; (b) ``pandas.read_sql`` of the same query (float8 casts on PostgreSQL over a sync
  psycopg 3 SQLAlchemy engine; ``CAST(... AS REAL)`` over the stdlib sqlite3 on SQLite), index
  set the same way; (c) connectorx and the ADBC drivers where they import: installed into the
  venv for this benchmark only, never a dependency of the project.
- ``OHLCVRepository.upsert_frame`` of the same number of candles (a float64 frame) and
  ``upsert_many`` of them (records built before the clock), each against the raw driver's bulk
  write of the same rows (asyncpg COPY into a staging table + merge / sqlite3 executemany);
  every repetition starts from an empty table.
- Peak RSS of a ``MEMORY_ROWS`` (10M) candle read into float64 columns, in a fresh process,
  against the frame's own size.

Runs by itself (it is not part of ``python -m benchmarks``)::

    .venv/bin/python -m benchmarks.bench_frames --quick     # smoke run, prints the section
    .venv/bin/python -m benchmarks.bench_frames             # full sizes; rewrites the
                                                            # "DataFrames" section
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import make_url

from benchmarks import standalone
from benchmarks.candles import STEP, T0, TIMEFRAME, NativeRow, bars, native_rows
from benchmarks.config import Sizes
from benchmarks.databases import Database, refresh_statistics
from benchmarks.frames_memory import memory, probe
from benchmarks.frames_report import (
    MEMORY_START,
    READ,
    SYMBOL,
    WRITE,
    WRITE_MANY,
    section,
)
from benchmarks.raw_driver import DriverRow
from benchmarks.raw_postgres import RawPostgres
from benchmarks.results import BackendResults, Figure, ratio_target
from benchmarks.standalone import Module
from benchmarks.timing import Case, Samples, compare
from iftb.data.storage import OHLCVRepository

FRAME_ROWS = 1_000_000
MEMORY_ROWS = int(os.environ.get("IFTB_BENCH_FRAME_MEMORY_ROWS", "10000000"))
QUICK_ROWS = 20_000
_SEED_CHUNK = 500_000
TARGETS = {"records": 5.0, "read_sql": 1.0, "fastest": 0.5}
VALUES = ("open", "high", "low", "close", "volume", "quote_volume")
_SELECT = {  # constant column names; every value is a bound parameter
    "postgresql": (
        'SELECT "timestamp", '  # noqa: S608
        + ", ".join(f'"{name}"::float8 AS "{name}"' for name in VALUES)
        + ', trades_count FROM ohlcv WHERE symbol = %(s)s AND "timestamp" BETWEEN %(a)s AND %(b)s '
        'ORDER BY "timestamp"'
    ),
    "sqlite": (
        'SELECT "timestamp", '  # noqa: S608
        + ", ".join(f'CAST("{name}" AS REAL) AS "{name}"' for name in VALUES)
        + ', trades_count FROM ohlcv WHERE symbol = ? AND "timestamp" BETWEEN ? AND ? '
        'ORDER BY "timestamp"'
    ),
}


def _sizes(sizes: Sizes) -> tuple[int, int]:
    """Frame rows and memory-probe rows: full sizes unless the run is a --quick one."""
    quick = sizes.rows < 100_000
    return (QUICK_ROWS, QUICK_ROWS * 5) if quick else (FRAME_ROWS, MEMORY_ROWS)


def _plain_url(db: Database, driver: str) -> str:
    return make_url(db.url).set(drivername=driver).render_as_string(hide_password=False)


async def run(db: Database, sizes: Sizes, out: BackendResults) -> None:
    rows, memory_rows = _sizes(sizes)
    await _seed(db, rows)
    await _reads(db, sizes, rows, out)
    await _writes(db, sizes, rows, out)
    await _seed(db, memory_rows, MEMORY_START)
    out.figures.append(await memory(db, memory_rows))
    await db.raw.clear_candles()


def _driver_rows(db: Database, native: Sequence[NativeRow]) -> list[DriverRow]:
    """The raw driver's rows (trade candles: the price type takes its default)."""
    return db.raw.candle_rows(native)


async def _seed(db: Database, rows: int, start: datetime = T0) -> None:
    """``rows`` candles of the series from ``start``, written by the raw driver (untimed)."""
    await db.raw.clear_candles()
    if isinstance(db.raw, RawPostgres):  # the raw COPY needs the months' partitions
        await db.raw.ensure_partitions(start, start + STEP * rows)
    for first in range(0, rows, _SEED_CHUNK):
        count = min(_SEED_CHUNK, rows - first)
        native = list(native_rows(SYMBOL, first, count, start=start))
        await db.raw.insert(_driver_rows(db, native))
    await refresh_statistics(db)


# --- reads ---------------------------------------------------------------------------------


async def _reads(db: Database, sizes: Sizes, rows: int, out: BackendResults) -> None:
    import pandas as pd

    start, end = T0, T0 + STEP * (rows - 1)
    frames: dict[str, Any] = {}

    async def library() -> None:
        async with db.manager.get_session(read_only=True) as session:
            frames["library"] = await OHLCVRepository(session).get_frame(
                SYMBOL, TIMEFRAME, start, end
            )

    async def records() -> None:
        async with db.manager.get_session(read_only=True) as session:
            candles = await OHLCVRepository(session).get_range(SYMBOL, TIMEFRAME, start, end)
        frame = pd.DataFrame.from_records(
            [
                (c.timestamp, c.open, c.high, c.low, c.close, c.volume, c.quote_volume)
                for c in candles
            ],
            columns=["timestamp", *VALUES],
            index="timestamp",
        ).astype("float64")
        frame["trades_count"] = pd.array([c.trades_count for c in candles], dtype="Int64")
        frames["records"] = frame

    baselines: dict[str, Callable[[], Awaitable[None]]] = {"records": records}
    for name, reader in _readers(db, start, end).items():

        def side(reader: Callable[[], Any] = reader, name: str = name) -> Awaitable[None]:
            async def call() -> None:
                frames[name] = await asyncio.to_thread(reader)

            return call()

        try:
            await side()
        except Exception as exc:  # a reader that does not work here is reported, not fatal
            out.checks.append(f"frames: {name} could not read here: {type(exc).__name__}: {exc}")
            continue
        baselines[name] = side
    await library()
    cases = [Case(library), *(Case(action) for action in baselines.values())]
    library_samples, *others = await compare(sizes.repetitions, *cases)
    expected = frames["library"]
    for name in frames:
        got = frames[name]
        if len(got) != rows or not (got["close"].to_numpy() == expected["close"].to_numpy()).all():
            raise RuntimeError(f"frames: {name} read a different frame ({len(got)} rows)")
    out.checks.append(
        f"frames: every reader's {rows:,}-candle frame has the same float64 close column as "
        "get_frame's (each value float(Decimal) of the stored one)"
    )
    timed = dict(zip(baselines, others, strict=True))
    child: set[str] = set()
    if db.backend == "sqlite":
        for name, found in (await _external_sqlite(db, rows, sizes.repetitions)).items():
            if isinstance(found, str):
                out.checks.append(f"frames: {name} could not read here: {found}")
                continue
            timed[name] = Samples(tuple(found))
            child.add(name)
    fastest = min(
        (name for name in timed if name not in ("records", "read_sql")),
        key=lambda name: timed[name].median,
        default=None,
    )
    for name, samples in timed.items():
        kind = "fastest" if name == fastest else name if name in TARGETS else None
        ratio = samples.median / library_samples.median
        target = ratio_target(TARGETS[kind], name, ratio) if kind else None
        note = "timed in a child process (its own copy of SQLite)" if name in child else ""
        out.figures.append(Figure(READ, rows, library_samples, samples, name, target, note))


def _readers(db: Database, start: Any, end: Any) -> dict[str, Callable[[], Any]]:
    """The reads other than the library's, each a blocking call giving the same frame."""
    import pandas as pd

    readers: dict[str, Callable[[], Any]] = {}
    query = _SELECT[db.backend]
    if db.backend == "sqlite":
        path = db.url.split(":///", 1)[1]
        bounds = (SYMBOL, _sqlite_text(start), _sqlite_text(end))

        def read_sql() -> Any:
            with sqlite3.connect(path) as connection:
                return indexed(pd.read_sql(query, connection, params=bounds))

        readers["read_sql"] = read_sql
        return readers
    from sqlalchemy import create_engine

    engine = create_engine(_plain_url(db, "postgresql+psycopg"))
    params = {"s": SYMBOL, "a": start, "b": end}

    def read_sql_pg() -> Any:
        with engine.connect() as connection:
            return indexed(pd.read_sql(query, connection, params=params))

    readers["read_sql"] = read_sql_pg
    literal = query % {
        "s": f"'{SYMBOL}'",
        "a": f"'{start.isoformat()}'",
        "b": f"'{end.isoformat()}'",
    }
    url = _plain_url(db, "postgresql")
    readers["connectorx"] = lambda: indexed(_connectorx(url, literal))
    readers["ADBC PostgreSQL"] = lambda: indexed(_adbc("adbc_driver_postgresql", url, literal))
    return readers


def indexed(frame: Any) -> Any:
    """A driver's frame given get_frame's index: aware UTC open times, trades_count Int64."""
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(frame["timestamp"]):
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    elif frame["timestamp"].dt.tz is None:
        frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    frame = frame.set_index("timestamp")
    frame["trades_count"] = frame["trades_count"].astype("Int64")
    return frame


def _sqlite_readers(path: str, start: Any, end: Any) -> dict[str, Callable[[], Any]]:
    """connectorx and ADBC on SQLite. Each bundles its own copy of SQLite: in the process that
    holds the library's connections, the second copy breaks the first one's WAL locks (the
    benchmark died of SIGBUS that way), so these run in a child process (``external``)."""
    bounds = (SYMBOL, _sqlite_text(start), _sqlite_text(end))
    literal = _SELECT["sqlite"].replace("?", "'{}'").format(*bounds)
    return {
        "connectorx": lambda: indexed(_connectorx(f"sqlite://{path}", literal)),
        "ADBC SQLite": lambda: indexed(_adbc("adbc_driver_sqlite", path, literal)),
    }


def external(path: str, rows: int, repetitions: int) -> None:
    """Child process: time each SQLite reader of ``_sqlite_readers``; print JSON of
    name → seconds per repetition, or name → the error text."""
    start, end = T0, T0 + STEP * (rows - 1)
    found: dict[str, Any] = {}
    for name, reader in _sqlite_readers(path, start, end).items():
        try:
            frame = reader()  # warm-up, and the check
            if len(frame) != rows:
                raise RuntimeError(f"read {len(frame)} rows")
            seconds = []
            for _ in range(repetitions):
                began = time.perf_counter()
                reader()
                seconds.append(time.perf_counter() - began)
            found[name] = seconds
        except Exception as exc:
            found[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(found))


async def _external_sqlite(db: Database, rows: int, repetitions: int) -> dict[str, Any]:
    path = db.url.split(":///", 1)[1]
    command = [sys.executable, "-m", "benchmarks.bench_frames", "external", path, str(rows)]
    done = await asyncio.to_thread(
        subprocess.run,
        [*command, str(repetitions)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def _sqlite_text(moment: Any) -> str:
    from iftb.data.storage.types import datetime_to_sqlite_text

    return datetime_to_sqlite_text(moment)


def _connectorx(url: str, query: str) -> Any:
    import connectorx

    return connectorx.read_sql(url, query, return_type="pandas")


def _adbc(module: str, url: str, query: str) -> Any:
    import importlib

    dbapi = importlib.import_module(f"{module}.dbapi")
    with dbapi.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetch_arrow_table().to_pandas()


# --- writes --------------------------------------------------------------------------------


async def _writes(db: Database, sizes: Sizes, rows: int, out: BackendResults) -> None:
    native = list(native_rows(SYMBOL, 0, rows))
    async with db.manager.get_session(read_only=True) as session:
        frame = await OHLCVRepository(session).get_frame(
            SYMBOL, TIMEFRAME, T0, T0 + STEP * (rows - 1)
        )
    records = bars(native)
    prepared = _driver_rows(db, native)
    written: dict[str, int] = {}

    async def library_frame() -> None:
        async with db.manager.get_session() as session:
            written["frame"] = await OHLCVRepository(session).upsert_frame(frame, SYMBOL, TIMEFRAME)

    async def library_many() -> None:
        async with db.manager.get_session() as session:
            written["many"] = await OHLCVRepository(session).upsert_many(records)

    async def raw() -> None:
        await db.raw.upsert(prepared)

    empty = db.raw.clear_candles
    cases = [Case(library_frame, empty), Case(library_many, empty), Case(raw, empty)]
    await empty()
    await library_frame()  # warm-up, and the check: it stores what upsert_many stores
    frame_digest = await db.raw.digest()
    await empty()
    await library_many()
    if await db.raw.digest() != frame_digest:
        raise RuntimeError("upsert_frame and upsert_many stored different candles")
    out.checks.append(
        f"frames: upsert_frame of the {rows:,}-candle float64 frame stored exactly what "
        "upsert_many of the records stores (every key and value)"
    )
    frame_samples, many_samples, raw_samples = await compare(sizes.repetitions, *cases)
    if set(written.values()) != {rows}:
        raise RuntimeError(f"frames: wrote {written}, expected {rows} each")
    baseline = "raw COPY + merge" if db.backend == "postgresql" else "raw executemany"
    many_ratio = raw_samples.median / many_samples.median
    out.figures.append(Figure(WRITE_MANY, rows, many_samples, raw_samples, baseline))
    frame_ratio = raw_samples.median / frame_samples.median
    out.figures.append(
        Figure(
            WRITE,
            rows,
            frame_samples,
            raw_samples,
            baseline,
            ratio_target(round(0.9 * many_ratio, 2), baseline, frame_ratio),
            note=f"target: within 10% of upsert_many's {many_ratio:.2f}×",
        )
    )
    await empty()


MODULE = Module(
    "bench_frames",
    "frames",
    "## DataFrames",
    "DataFrames only: get_frame against the records route, read_sql, connectorx and ADBC; "
    "upsert_frame against the raw bulk write; peak RSS of a 10M-candle read. Rewrites the "
    "DataFrames section of the report.",
    run,
    section,
)


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["probe"]:
        probe(int(given[1]))
        return 0
    if given[:1] == ["external"]:
        external(given[1], int(given[2]), int(given[3]))
        return 0
    return standalone.main(MODULE, given)


if __name__ == "__main__":
    raise SystemExit(main())
