"""The dashboard's latency (docs/performance.md, "## Dashboard"): p50 and p95 of every API
endpoint, as a browser meets them — over HTTP, from a real ``iftb-db serve`` process (uvicorn),
one request at a time on a kept-alive connection, after a warm-up — on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.bench_web [--requests 200] [--budget 60] [--backends ...]

The database (benchmarks/web_data.py: 5M candles over 50 series, a backtest run of 100k
trades) is built on the first run and kept under /tmp/iftb-bench-web. The target is a p95 under
100 ms per endpoint; the section says which endpoints miss it. ``browser_first_render`` is where
the page's time to first render in a browser joins the section.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx

from benchmarks import bench_page, web_data
from benchmarks.candles import STEP, T0
from benchmarks.config import DEFAULT_OUTPUT
from benchmarks.machine import describe, load_average
from benchmarks.standalone import TITLES, log, splice
from iftb.data.storage import Scope

HEADING = "## Dashboard"
TARGET_MS = 100.0
WARM_UP = 20
WARM_UP_SECONDS = 15.0
"""The warm-up stops early past this (an endpoint of seconds needs no 20 rounds of it)."""
STARTUP_SECONDS = 120.0


@dataclass(frozen=True)
class Plan:
    """How much to time: ``requests`` per endpoint, fewer past ``budget`` seconds."""

    requests: int
    budget: float


@dataclass
class BackendLatency:
    """One backend's figures: milliseconds of each request, by endpoint label."""

    backend: str
    build_seconds: float | None = None
    latencies: dict[str, list[float]] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    """Milliseconds of each endpoint's first request, before anything of it was kept."""
    extra_lines: list[str] = field(default_factory=list)


def endpoints(scope: Scope) -> list[tuple[str, str]]:
    """(label, path with query) of every endpoint, with inputs a dashboard sends."""
    assert scope.run_id is not None
    mine = {"bot": scope.bot, "mode": scope.mode, "run_id": str(scope.run_id)}
    week = {"start": _at(40_000), "end": _at(50_080)}
    series = {"symbol": web_data.symbol(7), "exchange": "binance"}

    def path(route: str, **query: str) -> str:
        return f"/api/{route}?{urlencode(query)}" if query else f"/api/{route}"

    return [
        ("scopes", path("scopes")),
        ("statistics (100k trades)", path("statistics", **mine)),
        ("statistics (a week)", path("statistics", **mine, **week)),
        ("daily (365 days)", path("daily", **mine)),
        ("equity (365 days)", path("equity", **mine)),
        ("positions", path("positions", **mine)),
        ("trades (newest 100 of 100k)", path("trades", **mine)),
        (
            "trades (a symbol, page 11)",
            path("trades", **mine, symbol=series["symbol"], offset="1000"),
        ),
        ("trades/markers (a week)", path("trades/markers", **mine, **series, **week)),
        ("trades/{id}/ledger", path(f"trades/w-{web_data.TRADES // 2}/ledger", **mine)),
        ("llm-usage (30 days)", path("llm-usage", **mine)),
        ("events (warning+, 100)", path("events", **mine)),
        ("inventory (50 series)", path("inventory")),
        (
            "candles (1000 of 100k)",
            path("candles", **series, timeframe="1m", start=_at(60_000), limit="1000"),
        ),
    ]


def browser_first_render(base_url: str, token: str, backend: str) -> list[str]:
    """The page's time to first render in a browser, as report lines (Markdown), measured while
    the server at ``base_url`` is up (benchmarks/bench_page.py)."""
    return bench_page.first_render_lines(base_url, token, backend)


def _at(minutes: int) -> str:
    return (T0 + STEP * minutes).isoformat()


@contextmanager
def serving(url: str, backend: str) -> Iterator[tuple[str, str]]:
    """``iftb-db serve`` on ``url`` and a free port, its log kept beside the database; yields
    its base URL and token, and stops it afterwards."""
    token = secrets.token_urlsafe(32)
    port = _free_port()
    environment = {**os.environ, "IFTB_WEB_TOKEN": token}
    command = [sys.executable, "-m", "iftb.cli", "serve", "--port", str(port)]
    with (web_data.CACHE / f"serve-{backend}.log").open("w") as output:
        process = subprocess.Popen(
            [*command, "--database-url", url],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        try:
            _wait_until_up(f"http://127.0.0.1:{port}", token, process)
            yield f"http://127.0.0.1:{port}", token
        finally:
            process.terminate()
            process.wait(timeout=30)


def measure(built: web_data.Built, plan: Plan, backend: str) -> BackendLatency:
    """Every endpoint's latencies from a server over the built database."""
    with serving(built.url, backend) as (base, token):
        result = asyncio.run(_measure_endpoints(base, token, built.scope, plan, backend))
        result.extra_lines = browser_first_render(base, token, backend)
    result.build_seconds = built.build_seconds
    return result


async def _measure_endpoints(
    base: str, token: str, scope: Scope, plan: Plan, backend: str
) -> BackendLatency:
    result = BackendLatency(backend)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        for label, path in endpoints(scope):
            began = time.perf_counter()
            (await client.get(path)).raise_for_status()
            result.first[label] = (time.perf_counter() - began) * 1000
            result.latencies[label] = await _time(client, path, plan.requests, plan.budget)
            log(f"{backend}: {label}: p95 {percentile(result.latencies[label], 95):.1f} ms")
    return result


async def _time(client: httpx.AsyncClient, path: str, requests: int, budget: float) -> list[float]:
    """``requests`` timed requests, fewer when they would outlast ``budget`` seconds (an
    endpoint of seconds per request; the report gives each endpoint's count)."""
    warm_until = time.monotonic() + WARM_UP_SECONDS
    for _ in range(WARM_UP):
        (await client.get(path)).raise_for_status()
        if time.monotonic() > warm_until:
            break
    timings: list[float] = []
    until = time.monotonic() + budget
    while len(timings) < requests and (not timings or time.monotonic() < until):
        began = time.perf_counter()
        response = await client.get(path)
        timings.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    return timings


def _wait_until_up(base: str, token: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"iftb-db serve exited with {process.returncode}")
        try:
            answer = httpx.get(f"{base}/api/scopes", headers={"Authorization": f"Bearer {token}"})
            answer.raise_for_status()
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def percentile(values: Sequence[float], rank: int) -> float:
    """Nearest-rank percentile: an observed latency, as the LLM report computes its p95."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def section(results: Sequence[BackendLatency], provenance: str, plan: Plan) -> list[str]:
    """The report's Dashboard section."""
    header = "| Endpoint |" + "".join(
        f" {TITLES[r.backend]} first ms | {TITLES[r.backend]} p50 ms | {TITLES[r.backend]} p95 ms"
        " | n |"
        for r in results
    )
    lines = [
        HEADING,
        "",
        f"Latency of each API endpoint over HTTP from a real `iftb-db serve` (uvicorn, one "
        f"process), one request at a time on a kept-alive connection: {plan.requests} timed "
        f"requests per endpoint (n: fewer where they would have outlasted {plan.budget:.0f} s) "
        f"after {WARM_UP} of warm-up (fewer past {WARM_UP_SECONDS:.0f} s), on a database of "
        f"{web_data.SERIES * web_data.CANDLES_PER_SERIES:,} candles over {web_data.SERIES} "
        f"series (1m) and a backtest run of {web_data.TRADES:,} trades with "
        f"{web_data.DAYS} daily rows, {web_data.EVENTS:,} events and "
        f"{web_data.LLM_CALLS:,} LLM calls (benchmarks/web_data.py). Target: p95 under "
        f"{TARGET_MS:.0f} ms for every endpoint. 'first' is each endpoint's first request "
        "after the server started: for the statistics, the computation itself, which the "
        "server then keeps until a trade of the scope is written (the scope's trades revision, "
        "migration 0012); the timed requests after it are answered from what it kept.",
        "",
        header,
        "|---|" + "---:|---:|---:|---:|" * len(results),
    ]
    for label in results[0].latencies:
        cells = []
        for result in results:
            timings = result.latencies[label]
            p95 = percentile(timings, 95)
            mark = f"**{p95:.1f}**" if p95 >= TARGET_MS else f"{p95:.1f}"
            cells.append(
                f" {result.first[label]:.1f} | {percentile(timings, 50):.1f} | {mark}"
                f" | {len(timings)} |"
            )
        lines.append(f"| {label} |" + "".join(cells))
    lines.append("")
    for result in results:
        missed = [
            label
            for label, values in result.latencies.items()
            if percentile(values, 95) >= TARGET_MS
        ]
        verdict = (
            f"every endpoint within {TARGET_MS:.0f} ms at p95"
            if not missed
            else f"{len(missed)} endpoint(s) miss the target (bold): {', '.join(missed)}"
        )
        built = (
            f"database built in this run in {result.build_seconds / 60:.1f} min"
            if result.build_seconds is not None
            else "kept database reused"
        )
        lines.append(f"- {TITLES[result.backend]}: {verdict} ({built}).")
        lines += result.extra_lines
    lines += ["", provenance, ""]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_web", description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds of timed requests per endpoint, at most"
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if not backends or set(backends) - set(TITLES):
        parser.error("--backends: expected a subset of sqlite,postgresql")
    if args.requests < 1 or args.budget <= 0:
        parser.error("--requests: at least 1; --budget: more than 0")
    plan = Plan(args.requests, args.budget)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join([".venv/bin/python", "-m", "benchmarks.bench_web", *given])
    load_at_start, began, started = load_average(), time.perf_counter(), datetime.now(UTC)
    results = []
    versions = []
    for backend in backends:
        if backend == "sqlite":
            built = web_data.sqlite_database()
            results.append(_measured(built, plan, backend))
            versions.append(f"SQLite {_sqlite_version()}")
            continue
        with web_data.postgres_cluster() as server:
            built = web_data.postgres_database(server)
            results.append(_measured(built, plan, backend))
            versions.append(f"PostgreSQL {asyncio.run(_server_version(built.url))}")
    machine = describe()
    provenance = (
        f"Measured with `{command}` on {started:%Y-%m-%d %H:%M} UTC "
        f"({(time.perf_counter() - began) / 60:.1f} min), not in the run the rest of this file "
        f"comes from. Machine: {machine['CPU']}, {machine['RAM']} RAM, {machine['Python']}, "
        f"SQLAlchemy {machine['SQLAlchemy']}, asyncpg {machine['asyncpg']}; "
        f"{', '.join(versions)}; load average {load_at_start} at start, {load_average()} at "
        f"end; library commit {machine['Library commit']}."
    )
    lines = section(results, provenance, plan)
    print("\n".join(lines))
    if not args.no_write:
        document = DEFAULT_OUTPUT.read_text(encoding="utf-8")
        DEFAULT_OUTPUT.write_text(splice(document, lines, HEADING), encoding="utf-8")
        print(f"Dashboard section written to {DEFAULT_OUTPUT}", file=sys.stderr)
    return 0


def _measured(built: web_data.Built, plan: Plan, backend: str) -> BackendLatency:
    if built.build_seconds is not None:
        log(f"{backend}: database built in {built.build_seconds:.0f} s")
    return measure(built, plan, backend)


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


async def _server_version(url: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    raise SystemExit(main())
