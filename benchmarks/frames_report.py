"""The "DataFrames" section of docs/performance.md, from ``bench_frames``' figures, and the
names its figures go by."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from benchmarks.results import BackendResults, Figure
from benchmarks.standalone import TITLES, samples_text

SYMBOL = "BENCH_FRAMEUSDT"
MEMORY_START = datetime(2000, 1, 1, tzinfo=UTC)
"""10M one-minute candles span 19 years: from 2020 they would reach past the partitions' limit
(eleven years ahead)."""
URL_VARIABLE = "IFTB_BENCH_URL"
READ = "get_frame, pandas float64"
WRITE = "upsert_frame, pandas float64"
WRITE_MANY = "upsert_many (records built before the clock)"
MEMORY = "get_frame peak RSS"


# --- the "DataFrames" section of docs/performance.md ------------------------------------------


def section(results: Sequence[BackendResults], provenance: str) -> list[str]:
    lines = ["## DataFrames", "", provenance, ""]
    measured = [result for result in results if not result.skipped]
    lines += [
        "**Reads**: `OHLCVRepository.get_frame` of one series into a pandas DataFrame of float64 "
        "columns indexed by aware UTC open time, against other ways to the same frame (ratio = "
        "their time / get_frame's: above 1, get_frame is faster). Seconds are the median "
        "[fastest – slowest] of the repetitions, every side taking turns.",
        "",
        "| Backend | Candles | get_frame s | Against | Their s | Ratio | Target | Met? |",
        "|---|--:|--:|---|--:|--:|---|---|",
    ]
    for result in measured:
        for figure in result.figures:
            if figure.operation != READ or figure.baseline is None:
                continue
            lines.append(_row(result.backend, figure))
    lines += [
        "",
        "**Writes**: `upsert_frame` of a float64 frame and `upsert_many` of the same candles "
        "(records built before the clock) against the raw driver's bulk write, every repetition "
        "into an empty table.",
        "",
        "| Backend | Candles | Library call | Library s | Raw s | Ratio | Target | Met? |",
        "|---|--:|---|--:|--:|--:|---|---|",
    ]
    for result in measured:
        for figure in result.figures:
            if figure.operation in (WRITE, WRITE_MANY) and figure.baseline is not None:
                lines.append(_row(result.backend, figure, call=True))
    lines += ["", "**Memory** (a fresh process per read, RSS sampled every 5 ms):", ""]
    for result in measured:
        for figure in result.figures:
            if figure.operation == MEMORY:
                lines.append(f"- {TITLES[result.backend]}, {figure.rows:,} candles: {figure.note}")
    for result in results:
        if result.skipped:
            lines.append(f"\n{TITLES[result.backend]} was skipped: {result.skipped}.")
    checks = [
        f"- {TITLES[result.backend]}: {check}"
        for result in measured
        for check in result.checks
        if check.startswith("frames:")
    ]
    lines += ["", *_NOTES, ""]
    if checks:
        lines += ["Sanity checks (outside the timers):", "", *checks, ""]
    return lines


def _row(backend: str, figure: Figure, *, call: bool = False) -> str:
    assert figure.baseline is not None
    met, text = "—", "—"
    if figure.target is not None:
        met = {True: "**yes**", False: "**NO**", None: "n/a"}[figure.target.met]
        text = figure.target.text
    middle = (
        f"{figure.operation} | {samples_text(figure.library)} | {samples_text(figure.baseline)}"
        if call
        else f"{samples_text(figure.library)} | {figure.baseline_name} | "
        f"{samples_text(figure.baseline)}"
    )
    return (
        f"| {TITLES[backend]} | {figure.rows:,} | {middle} | {figure.ratio or 0:.2f}× | "
        f"{text} | {met} |"
    )


_NOTES = [
    "- **records**: `get_range`, then `pd.DataFrame.from_records` of the records' values, the "
    "Decimals made float64 and trades_count a nullable Int64: the route a user had before "
    "get_frame.",
    "- **read_sql**: `pandas.read_sql` of the same query with the values cast to float in SQL "
    "(`::float8` on PostgreSQL through a sync psycopg 3 connection; `CAST(... AS REAL)` through "
    "the stdlib sqlite3 on SQLite), then the same index (SQLite's timestamps are text: parsed "
    "with `pd.to_datetime(utc=True)`).",
    "- **connectorx** and **ADBC** (`adbc-driver-postgresql`, `adbc-driver-sqlite`) were "
    "pip-installed into the venv for this benchmark only; they are not dependencies of iftb. "
    "They read the same float-cast query into Arrow/pandas and get the same index; the "
    "fastest of them carries the ≥ 0.5× target. On SQLite they run in a child process that "
    "times itself: each bundles its own copy of SQLite, and a second copy in the process that "
    "holds the library's connections breaks their WAL locks (the run died of SIGBUS).",
    "- **get_frame** reads the candles as CSV text (PostgreSQL `COPY (query) TO STDOUT`, "
    "SQLite one `group_concat` per 100k candles, each parsed while SQLite builds the next) "
    "parsed by pyarrow in 8 MB blocks; the floats "
    "are correctly rounded from the stored decimal text.",
    "- The write ratio is raw time / library time; `upsert_frame`'s target is within 10% of "
    "`upsert_many`'s own ratio in the same run.",
]
