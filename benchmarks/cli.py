"""Command line: parse the options, run the benchmarks, write the report."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.config import (
    BACKENDS,
    DEFAULT_OUTPUT,
    LARGE_COVERAGE_ROWS,
    QUICK,
    Config,
    Sizes,
    with_overrides,
)


def parse_args(argv: Sequence[str]) -> Config:
    """The run described by ``argv`` (without the program name)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time the iftb storage layer against the raw drivers; write the report.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--large",
        action="store_true",
        help=f"seed {LARGE_COVERAGE_ROWS:,} candles on PostgreSQL for get_coverage at scale",
    )
    parser.add_argument("--rows", type=positive, help="batch size (insert/upsert/get_range)")
    parser.add_argument("--repetitions", type=positive, help="timed repetitions per figure")
    parser.add_argument("--gap-rows", type=positive, help="candles of the gapped series")
    parser.add_argument("--stream-rows", type=positive, help="candles read by stream_range")
    parser.add_argument("--orm-rows", type=positive, help="batch of the naive ORM paths")
    parser.add_argument("--trades", type=positive, help="closed trades for the statistics")
    parser.add_argument(
        "--backends",
        help="comma-separated subset of: "
        + ", ".join(BACKENDS)
        + " (default: all; with --database-url: postgresql)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="measure PostgreSQL on this existing database (postgresql+asyncpg://..., e.g. a "
        "Citus coordinator), migrated to head, instead of a throwaway one; only the "
        "benchmark's own series (symbols BENCH_*) are written, and deleted afterwards",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"report path (default {DEFAULT_OUTPUT}; with --quick or --database-url the report "
        "is only printed)",
    )
    args = parser.parse_args(argv)
    url = args.database_url
    if url is not None and not url.startswith(("postgresql://", "postgresql+asyncpg://")):
        parser.error("--database-url: expected a postgresql+asyncpg:// (or postgresql://) URL")
    if url is not None and args.large:
        parser.error("--large seeds 10M candles: only on a database of the benchmark's own")
    if url is not None and url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    default_backends = "postgresql" if url else ",".join(BACKENDS)
    backends = tuple(
        name.strip() for name in (args.backends or default_backends).split(",") if name.strip()
    )
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(f"--backends: unknown or empty: {', '.join(unknown) or '(none)'}")
    sizes = with_overrides(
        QUICK if args.quick else Sizes(),
        rows=args.rows,
        repetitions=args.repetitions,
        gap_rows=args.gap_rows,
        stream_rows=args.stream_rows,
        orm_rows=args.orm_rows,
        trades=args.trades,
        coverage_rows=LARGE_COVERAGE_ROWS if args.large else None,
    )
    output = args.output if args.output or args.quick or url else DEFAULT_OUTPUT
    command = shlex.join([".venv/bin/python", "-m", "benchmarks", *_without_url(argv)])
    return Config(sizes, backends, output, command, quick=args.quick, database_url=url)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; print the report and write it to the configured path."""
    from benchmarks.databases import NotAtHeadError
    from benchmarks.report import render
    from benchmarks.runner import run

    config = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = run(config)
    except NotAtHeadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    markdown = render(config, results)
    if config.output is None:
        print(markdown)
    else:
        config.output.parent.mkdir(parents=True, exist_ok=True)
        config.output.write_text(markdown, encoding="utf-8")
        print(markdown)
        print(f"report written to {config.output}", file=sys.stderr)
    return 0


def _without_url(argv: Sequence[str]) -> list[str]:
    """``argv`` with the database URL (which may hold a password) replaced by a placeholder."""
    shown: list[str] = []
    for arg in argv:
        if arg.startswith("--database-url="):
            arg = "--database-url=URL"
        elif shown and shown[-1] == "--database-url":
            arg = "URL"
        shown.append(arg)
    return shown


def positive(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value
