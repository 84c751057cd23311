"""Running one benchmark module by itself (``python -m benchmarks.bench_scopes``,
``benchmarks.bench_ledger``): its figures on each backend, its section of docs/performance.md
spliced in place, and the provenance line that says where the figures come from."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.candles import T0
from benchmarks.config import BACKENDS, DEFAULT_OUTPUT, QUICK, Sizes, with_overrides
from benchmarks.databases import Database, postgres_database, postgres_server, sqlite_database
from benchmarks.machine import describe, load_average
from benchmarks.results import BackendResults
from benchmarks.timing import Samples

TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Module:
    """A benchmark module that can run by itself."""

    name: str
    """The module's name under ``benchmarks`` (``bench_scopes``)."""
    label: str
    """What the log calls its phase (``scopes``)."""
    heading: str
    """Its section's heading in the report (``## Scopes``)."""
    description: str
    run: Callable[[Database, Sizes, BackendResults], Awaitable[None]]
    section: Callable[[Sequence[BackendResults], str], list[str]]


def samples_text(samples: Samples) -> str:
    """Seconds as median [fastest – slowest]."""
    return f"{samples.median:.3f} [{samples.low:.3f} – {samples.high:.3f}]"


def splice(document: str, lines: Sequence[str], heading: str = "## Scopes") -> str:
    """``document`` with its ``heading`` section replaced by ``lines`` (or, when it has none,
    ``lines`` inserted before "## Timings", else appended)."""
    existing = document.splitlines()
    new = list(lines)
    if heading in existing:
        start = existing.index(heading)
        end = next(
            (i for i in range(start + 1, len(existing)) if existing[i].startswith("## ")),
            len(existing),
        )
        existing[start:end] = new
    elif "## Timings" in existing:
        at = existing.index("## Timings")
        existing[at:at] = new
    else:
        existing += ["", *new]
    return "\n".join(existing).rstrip() + "\n"


async def _measure(module: Module, db: Database, sizes: Sizes) -> BackendResults:
    out = BackendResults(db.backend, db.server_version)
    began = time.perf_counter()
    log(f"{db.backend}: {module.label} ...")
    await module.run(db, sizes, out)
    out.seconds = time.perf_counter() - began
    log(f"{db.backend}: {module.label} done in {out.seconds:.1f} s")
    return out


def measure_all(
    module: Module, sizes: Sizes, backends: Sequence[str]
) -> tuple[list[BackendResults], str]:
    """The module's figures on every backend, and where PostgreSQL came from."""
    results = []
    origin = ""
    if "sqlite" in backends:

        async def sqlite() -> BackendResults:
            async with sqlite_database() as db:
                return await _measure(module, db, sizes)

        results.append(asyncio.run(sqlite()))
    if "postgresql" in backends:
        with postgres_server() as (server, origin):
            if server is None:
                results.append(BackendResults("postgresql", skipped=origin))
            else:

                async def postgres() -> BackendResults:
                    async with postgres_database(server, T0) as db:
                        return await _measure(module, db, sizes)

                results.append(asyncio.run(postgres()))
    return results, origin


def main(module: Module, argv: Sequence[str] | None = None) -> int:
    """Measure ``module`` by itself; print its section, and (unless ``--quick``) rewrite it in
    the report."""
    title = module.heading.removeprefix("## ")
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{module.name}", description=module.description
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--repetitions", type=int, help="timed repetitions per figure")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgresql")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"report whose {title} section to rewrite (default {DEFAULT_OUTPUT}; with --quick "
        "the section is only printed)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if not backends or set(backends) - set(BACKENDS):
        parser.error(f"--backends: expected a subset of {', '.join(BACKENDS)}")
    sizes = with_overrides(QUICK if args.quick else Sizes(), repetitions=args.repetitions)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join([".venv/bin/python", "-m", f"benchmarks.{module.name}", *given])
    load_at_start = load_average()
    began = time.perf_counter()
    started = datetime.now(UTC)
    results, origin = measure_all(module, sizes, backends)
    machine = describe()
    versions = ", ".join(
        f"{TITLES[result.backend]} {result.server_version}"
        for result in results
        if not result.skipped
    )
    provenance = (
        f"Measured by itself with `{command}` on {started:%Y-%m-%d %H:%M} UTC "
        f"({(time.perf_counter() - began) / 60:.1f} min, {sizes.repetitions} repetitions per "
        f"figure{', a --quick smoke run: the figures mean nothing' if args.quick else ''}), "
        f"not in the run the rest of this file comes from. Machine: {machine['CPU']}, "
        f"{machine['RAM']} RAM, {machine['Python']}, SQLAlchemy {machine['SQLAlchemy']}, "
        f"asyncpg {machine['asyncpg']}; {versions}"
        f"{f' ({origin})' if origin else ''}; load average {load_at_start} at start, "
        f"{load_average()} at end; library commit {machine['Library commit']}."
    )
    lines = module.section(results, provenance)
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    print("\n".join(lines))
    if output is not None:
        document = output.read_text(encoding="utf-8") if output.exists() else "# Performance\n"
        output.write_text(splice(document, lines, module.heading), encoding="utf-8")
        print(f"{title} section written to {output}", file=sys.stderr)
    return 0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
