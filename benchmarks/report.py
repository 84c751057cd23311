"""Renders a run as docs/performance.md: header, machine, sizes, one table per backend,
per-repetition spread, and how to read it all."""

from __future__ import annotations

from benchmarks import bench_ledger, bench_scopes
from benchmarks.config import Config
from benchmarks.results import BackendResults, Figure
from benchmarks.runner import Run
from benchmarks.targets import COVERAGE_ROWS
from benchmarks.timing import Samples

_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def render(config: Config, run: Run) -> str:
    """The whole Markdown report."""
    lines = [
        "# Performance",
        "",
        "> **Generated file — do not edit.** Written by the benchmark harness (`benchmarks/`) "
        f"with `{config.command}` on {run.started:%Y-%m-%d %H:%M} UTC "
        f"(the whole run took {run.seconds / 60:.1f} min). Re-run the command to refresh it.",
        "",
        *_machine(run),
        *_sizes(config, run),
        *_summary(run),
    ]
    for backend in run.results:
        lines += _backend(backend, config)
    if bench_scopes.measured(run.results):
        lines += bench_scopes.section(run.results, "Measured in the run above.")
    if bench_ledger.measured(run.results):
        lines += bench_ledger.section(run.results, "Measured in the run above.")
    lines += _spread(run, config)
    lines += _how_to_read(config)
    lines += AGAINST_EXISTING_DATABASE
    return "\n".join(lines).rstrip() + "\n"


def _machine(run: Run) -> list[str]:
    facts = dict(run.machine)
    for backend in run.results:
        if backend.backend == "postgresql":
            facts["PostgreSQL server"] = backend.server_version or "—"
            facts["PostgreSQL source"] = run.postgres_origin
    rows = [f"| {name} | {_cell(value)} |" for name, value in facts.items()]
    return ["## Machine", "", "| | |", "|---|---|", *rows, ""]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", r"\|")


def _sizes(config: Config, run: Run) -> list[str]:
    sizes = config.sizes
    large = (
        f"{sizes.coverage_rows:,} candles (PostgreSQL, `--large`)"
        if sizes.coverage_rows
        else "not run (add `--large` for the 10M-row get_coverage figure)"
    )
    facts = {
        "Batch N (insert_many, upsert_many, get_range)": f"{sizes.rows:,} candles",
        "Repetitions per figure (median reported)": str(sizes.repetitions),
        "Gapped series (get_gaps, get_coverage)": f"{sizes.gap_rows:,} stored candles",
        "Streamed series (stream_range)": (
            f"{sizes.stream_rows:,} candles, "
            f"{min(sizes.repetitions, sizes.stream_repetitions)} runs per side"
        ),
        "Naive ORM batch": f"{sizes.orm_rows:,} candles",
        "Closed trades (statistics, rollup)": f"{sizes.trades:,}",
        "Scopes (record_trades batch; statistics journal over 20 scopes)": (
            f"{sizes.scope_trades:,}; {sizes.scope_trades:,} and {sizes.scope_trades_large:,}"
        ),
        "Futures ledger (fills recorded one at a time; bulk history)": (
            f"{sizes.ledger_live_fills:,}; {sizes.ledger_history_trades:,} trades per series "
            "(20 symbols × long/short)"
        ),
        "Large coverage table": large,
    }
    rows = [f"| {name} | {value} |" for name, value in facts.items()]
    timing = ", ".join(
        f"{_TITLES[result.backend]} {result.seconds / 60:.1f} min"
        for result in run.results
        if not result.skipped
    )
    quick = " This was a `--quick` smoke run: its figures mean nothing." if config.quick else ""
    return [
        "## Sizes",
        "",
        "| | |",
        "|---|---|",
        *rows,
        "",
        f"Wall-clock per backend, seeding included: {timing}.{quick} The default sizes are "
        "chosen so that a full run of both backends stays under about 15 minutes on a 2-core "
        "machine.",
        "",
    ]


def _summary(run: Run) -> list[str]:
    decided = [
        (result.backend, figure)
        for result in run.results
        for figure in result.figures
        if figure.target is not None and figure.target.met is not None
    ]
    missed = [(backend, figure) for backend, figure in decided if not _met(figure)]
    lines = ["## Targets at a glance", ""]
    lines.append(f"{len(decided) - len(missed)} of {len(decided)} decided targets met.")
    lines.append("")
    for backend, figure in missed:
        assert figure.target is not None
        lines.append(
            f"- **Missed** on {_TITLES[backend]}: {figure.operation} — {figure.target.evidence} "
            f"(target {figure.target.text})"
        )
    undecided = [
        (result.backend, figure)
        for result in run.results
        for figure in result.figures
        if figure.target is not None and figure.target.met is None
    ]
    for backend, figure in undecided:
        assert figure.target is not None
        lines.append(
            f"- Not decided on {_TITLES[backend]}: {figure.operation} — {figure.target.evidence}"
        )
    for result in run.results:
        if result.skipped:
            lines.append(f"- {_TITLES[result.backend]} was **skipped**: {result.skipped}")
    return [*lines, ""]


def _met(figure: Figure) -> bool:
    return figure.target is not None and figure.target.met is True


def _backend(result: BackendResults, config: Config) -> list[str]:
    title = _TITLES[result.backend]
    if result.skipped:
        return [f"## {title}", "", f"Skipped: {result.skipped}.", ""]
    lines = [
        f"## {title} {result.server_version}",
        "",
        "| Operation | Rows | Library rows/s | Raw / baseline rows/s | Ratio | Target | Met? |",
        "|---|--:|--:|--:|--:|---|---|",
    ]
    for figure in result.figures:
        lines.append(_row(figure))
    notes = [f"- {figure.operation}: {figure.note}" for figure in result.figures if figure.note]
    checks = [f"- {check}" for check in result.checks]
    if notes:
        lines += ["", "Notes:", "", *notes]
    if checks:
        lines += ["", "Sanity checks (done outside the timers):", "", *checks]
    return [*lines, ""]


def _row(figure: Figure) -> str:
    baseline = "—"
    if figure.baseline_rate is not None:
        baseline = f"{figure.baseline_rate:,.0f} ({figure.baseline_name})"
    ratio = "—" if figure.ratio is None else ratio_text(figure.ratio)
    target = figure.target.text if figure.target else "—"
    met = "—"
    if figure.target is not None:
        verdict = {True: "**yes**", False: "**NO**", None: "n/a"}[figure.target.met]
        met = f"{verdict} ({figure.target.evidence})"
    return (
        f"| {figure.operation} | {figure.rows:,} | {figure.library_rate:,.0f} | {baseline} | "
        f"{ratio} | {target} | {met} |"
    )


def ratio_text(ratio: float) -> str:
    """Two decimals, or three significant ones for the tiny ratios of the naive paths."""
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def _spread(run: Run, config: Config) -> list[str]:
    lines = [
        "## Timings",
        "",
        f"Seconds per repetition: median [fastest – slowest] of {config.sizes.repetitions} "
        "(stream_range: of its runs per side).",
        "",
        "| Backend | Operation | Library s | Raw / baseline s |",
        "|---|---|--:|--:|",
    ]
    for result in run.results:
        for figure in result.figures:
            baseline = "—" if figure.baseline is None else _samples(figure.baseline)
            lines.append(
                f"| {_TITLES[result.backend]} | {figure.operation} | "
                f"{_samples(figure.library)} | {baseline} |"
            )
    return [*lines, ""]


def _samples(samples: Samples) -> str:
    return f"{samples.median:.3f} [{samples.low:.3f} – {samples.high:.3f}]"


def _how_to_read(config: Config) -> list[str]:
    n = f"{config.sizes.rows:,}"
    return [
        "## How to read this, and why it is measured this way",
        "",
        "- **Ratio** is library rows/s over raw rows/s for the same rows in the same run "
        "(equivalently raw time / library time): 1.00× means the library costs nothing on top "
        "of the driver, 0.50× that it takes twice as long. For get_gaps and get_coverage the "
        "baseline is the naive approach (load every timestamp with the raw driver, loop in "
        "Python), and the ratio is the library's speed-up over it.",
        "- **Same work, same rows.** Both sides write the same candles into the same database, "
        "commit, and (checked after the timed runs) leave byte-identical rows behind. The raw "
        "SQLite side gets the values already in their stored text form (decimal text at the "
        "column scale, fixed-width UTC timestamp text) and the raw PostgreSQL side the same "
        "Decimal/datetime tuples COPY takes; the library converts inside its timer. Building "
        f"the {n} `OHLCVBar` records (and so validating them) happens before the clock starts; "
        "insert_many's own batch checks (record types, duplicate keys) and its savepoint are "
        "timed.",
        "- **What the library adds** on the write paths: one pass over the batch for types and "
        "duplicate keys, a savepoint so a rejected batch leaves the caller's unit of work intact, "
        "and on upsert a last-one-wins de-duplication plus a sort by key (so concurrent "
        "upserters cannot deadlock); on SQLite the Decimal→text and datetime→text conversion in "
        "Python. On reads: building `OHLCVBar` records with Decimals and aware datetimes, which "
        "the raw sqlite3 side never does (it returns unparsed text).",
        "- **Repetitions** alternate which side goes first, each after a full garbage "
        "collection, and each write repetition starts from the same table state (empty for "
        "inserts, the existing half stored for upserts). The median is reported; the Timings "
        "table shows the spread.",
        "- **PostgreSQL** runs with `fsync=off`, `synchronous_commit=off` and "
        "`full_page_writes=off` (a throwaway cluster), so write figures are CPU- and "
        "protocol-bound, not disk-bound; on a durable server both sides slow down by the same "
        "commit cost. **SQLite** runs in WAL mode with `synchronous=NORMAL`, the library's "
        "pragmas, on both sides.",
        "- **stream_range** runs in a fresh subprocess per run, so the RSS growth (highest RSS "
        "sampled every 1,000 rows minus RSS at the start of the stream) is the stream's alone. "
        "The raw cursor is asyncpg's server-side cursor or sqlite3 `fetchmany`, in the same "
        "chunk size.",
        "- **Naive ORM rows** are contrast, not targets: `session.add_all` of `OHLCVModel` "
        "objects and a select-then-update loop, on a smaller batch scaled to rows/s. They show "
        "what the bulk paths save.",
        "- **Trade statistics** are single set-based SQL statements with no raw equivalent "
        "worth timing; the figure is trades covered per second (and the time in the Timings "
        "table). On SQLite exact decimal aggregates run as Python functions registered on the "
        "connection, so they cost per row.",
        f"- **get_coverage at scale**: the target is for {COVERAGE_ROWS:,} rows on PostgreSQL; "
        "without `--large` the figure is for the rows the run had, and marked n/a.",
        "- Nothing here is part of the test suite and nothing asserts a time: figures depend on "
        "the machine. Compare ratios, not absolute rows/s, across machines.",
        "",
    ]


AGAINST_EXISTING_DATABASE = [
    "## Against an existing database",
    "",
    "`.venv/bin/python -m benchmarks --database-url "
    "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB` "
    "measures PostgreSQL on a database that already exists, a Citus coordinator say, instead of "
    "a throwaway one; the raw-driver baseline connects to the same database, so every ratio is "
    "still the library against the raw driver in the same run. The database must be migrated "
    "to the head already: the benchmark never migrates it, and stops with `run iftb-db "
    "upgrade` when it is behind. Only the benchmark's own series (symbols `BENCH_*`) are "
    "written; they are deleted before and after the run, and so are the candle partitions the "
    "run created that are still empty then. The trade statistics are left out there (they "
    "cover every trade stored), `--large` is refused, only PostgreSQL runs unless `--backends` "
    "says otherwise, and the report is printed, not written, unless `--output` names a file. "
    "The URL (and its password) is kept out of the report.",
    "",
    "Plain PostgreSQL against Citus, through the library, in one run: `.venv/bin/python -m "
    "benchmarks.citus` starts a throwaway PostgreSQL cluster and a throwaway Citus cluster (a "
    "coordinator and two workers), distributes the Citus database (`--shard-count`, 32 by "
    "default) and times insert_many, upsert_many, get_range, get_gaps, get_coverage and "
    "creating a month on both (about 2 minutes on 2 cores; `--quick` is a smoke run of "
    "seconds). It writes `benchmarks/citus_results.md`; the measured figures are in "
    'docs/scaling.md, "Measured: plain PostgreSQL against Citus".',
    "",
]
"""The last section of docs/performance.md: how to run the harness elsewhere."""
