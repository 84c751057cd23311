"""The dashboard benchmark's database: 5M candles over 50 series and a backtest run of 100k
trades, with its daily rows, open positions, events and LLM calls — written through the
library's bulk paths (``insert_many``: COPY on PostgreSQL; ``record_trades``; ``log_events``),
built once and kept under /tmp for reruns (a SQLite file; a PostgreSQL data directory), and
upgraded to the schema head before each reuse."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
from tests.support.pg_cluster import (
    HOST,
    SUPERUSER,
    PostgresServer,
    _init_cluster,
    _start_on_free_port,
)

from benchmarks.candles import STEP, T0, TIMEFRAME, bars, native_rows
from iftb.data.storage import (
    BacktestRunRepository,
    DailyPerformance,
    DatabaseManager,
    LLMAnalysisLog,
    OHLCVRepository,
    Position,
    Scope,
    SystemEvent,
    Trade,
)

CACHE = Path("/tmp/iftb-bench-web")
SERIES = 50
CANDLES_PER_SERIES = 100_000
TRADES = 100_000
DAYS = 365
EVENTS = 20_000
LLM_CALLS = 5_000
OPEN_POSITIONS = 20
BOT = "bench-web"
DATABASE = "iftb_bench_web"
_CHUNK = 50_000
_SIZES = f"{SERIES}x{CANDLES_PER_SERIES}-{TRADES}"
"""Part of the cache's name: other sizes build another database."""


def symbol(number: int) -> str:
    return f"WEB{number:02d}USDT"


@dataclass(frozen=True)
class Built:
    """A database holding the benchmark's data: where, and the scope of its journal."""

    url: str
    scope: Scope
    build_seconds: float | None
    """None when the cached database was used."""


def sqlite_database() -> Built:
    """The SQLite file, built on the first run."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path, done = CACHE / f"sqlite-{_SIZES}.db", CACHE / f"sqlite-{_SIZES}.done"
    url = f"sqlite+aiosqlite:///{path}"
    if done.exists():
        return _reused(url, done)
    path.unlink(missing_ok=True)
    began = time.perf_counter()
    scope = asyncio.run(fill(url))
    done.write_text(str(scope.run_id))
    return Built(url, scope, time.perf_counter() - began)


@contextmanager
def postgres_cluster() -> Iterator[PostgresServer]:
    """The kept PostgreSQL cluster (fsync off, as the tests' throwaway ones), started for the
    run and stopped after it; created on the first run."""
    root = CACHE / "pg"
    data_dir, password_file = root / "data", CACHE / "pg-password"
    if not data_dir.exists():
        root.mkdir(parents=True, exist_ok=True)
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
        _init_cluster(root, data_dir, password_file.read_text(), "scram-sha-256")
    server = _start_on_free_port(
        PostgresServer(HOST, 0, SUPERUSER, password_file.read_text(), data_dir)
    )
    try:
        yield server
    finally:
        server.stop()


def postgres_database(server: PostgresServer) -> Built:
    """The PostgreSQL database in the kept cluster, built on the first run."""
    done = CACHE / f"pg-{_SIZES}.done"
    url = server.url(DATABASE)
    if done.exists():
        return _reused(url, done)
    began = time.perf_counter()
    scope = asyncio.run(_create_and_fill(server))
    done.write_text(str(scope.run_id))
    return Built(url, scope, time.perf_counter() - began)


def _reused(url: str, done: Path) -> Built:
    """The kept database, upgraded to the schema head first (a migration added since it was
    built, such as an index, would otherwise go unmeasured); before any timing starts."""
    asyncio.run(_migrate(url))
    return Built(url, Scope(BOT, "backtest", int(done.read_text())), None)


async def _migrate(url: str) -> None:
    manager = DatabaseManager(url)
    try:
        await manager.migrate()
    finally:
        await manager.disconnect()


async def _create_and_fill(server: PostgresServer) -> Scope:
    admin = await asyncpg.connect(server.url(driver=""))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    return await fill(server.url(DATABASE))


async def fill(url: str) -> Scope:
    """Write everything; returns the journal's scope (a backtest run of ``BOT``)."""
    manager = DatabaseManager(url)
    await manager.migrate()
    async with manager:
        for number in range(SERIES):
            for first in range(0, CANDLES_PER_SERIES, _CHUNK):
                count = min(_CHUNK, CANDLES_PER_SERIES - first)
                rows = list(native_rows(symbol(number), first, count))
                async with manager.get_session() as session:
                    await OHLCVRepository(session).insert_many(bars(rows))
        async with manager.get_session() as session:
            runs = BacktestRunRepository(session)
            run = await runs.start(
                BOT,
                "bench",
                timeframe=TIMEFRAME,
                data_start=T0,
                data_end=T0 + STEP * CANDLES_PER_SERIES,
            )
            await runs.record_trades(run.id, list(_trades()))
        scope = Scope(BOT, "backtest", run.id)
        async with manager.scope(BOT, "backtest", run.id).session() as journal:
            for day in _days():
                await journal.daily_performance.upsert(day)
            for position in _positions():
                await journal.positions.update_position(position)
            await journal.events.log_events(list(_events()))
            for call in _llm_calls():
                await journal.llm_calls.log(call)
        async with manager.get_session() as session:
            await BacktestRunRepository(session).finish(run.id, starting_balance=Decimal(10_000))
        if not manager.is_sqlite:
            async with manager.get_session() as session:
                connection = await session.connection()
                await connection.exec_driver_sql("ANALYZE")
    return scope


def _trades() -> Iterator[Trade]:
    """Closed trades spread over the candles' time, a fifth of them on each side's loss."""
    rng = random.Random(16)
    span = CANDLES_PER_SERIES - 120
    for number in range(TRADES):
        entry_at = rng.randrange(span)
        entry = Decimal(rng.randrange(2_000_000, 7_000_000)).scaleb(-2)
        exit_ = entry + Decimal(rng.randrange(-40_000, 50_000)).scaleb(-2)
        side = "long" if number % 2 else "short"
        move = exit_ - entry if side == "long" else entry - exit_
        quantity, fee = Decimal("0.01"), Decimal("0.4")
        yield Trade(
            trade_id=f"w-{number}",
            symbol=symbol(number % SERIES),
            exchange="binance",
            side=side,
            action="close",
            entry_price=entry,
            exit_price=exit_,
            quantity=quantity,
            leverage=Decimal(3),
            fee=fee,
            realized_pnl=move * quantity - fee,
            entry_time=T0 + STEP * entry_at,
            exit_time=T0 + STEP * (entry_at + rng.randrange(5, 120)),
        )


def _days() -> Iterator[DailyPerformance]:
    rng = random.Random(17)
    balance = Decimal(10_000)
    for offset in range(DAYS):
        pnl = Decimal(rng.randrange(-30_000, 35_000)).scaleb(-2)
        yield DailyPerformance(
            date=date(2019, 1, 1) + timedelta(days=offset),
            exchange="binance",
            total_trades=rng.randrange(100, 400),
            net_pnl=pnl,
            starting_balance=balance,
            ending_balance=balance + pnl,
        )
        balance += pnl


def _positions() -> Iterator[Position]:
    for number in range(OPEN_POSITIONS):
        entry = Decimal(30_000 + number)
        yield Position(
            symbol=symbol(number),
            exchange="binance",
            side="long",
            entry_price=entry,
            quantity=Decimal("0.01"),
            margin=(entry * Decimal("0.01") / 3).quantize(Decimal("1e-8")),
            leverage=Decimal(3),
            current_price=entry + 50,
            unrealized_pnl=Decimal("0.5"),
            entry_time=T0,
        )


def _events() -> Iterator[SystemEvent]:
    severities = ("info",) * 7 + ("warning", "warning", "error")
    for number in range(EVENTS):
        yield SystemEvent(
            event_type="bench", severity=severities[number % 10], message=f"event {number}"
        )


def _llm_calls() -> Iterator[LLMAnalysisLog]:
    rng = random.Random(18)
    for _ in range(LLM_CALLS):
        yield LLMAnalysisLog(
            analysis_type="signal",
            model_name=rng.choice(("model-a", "model-b", "model-c")),
            prompt_tokens=rng.randrange(500, 2_000),
            response_tokens=rng.randrange(50, 300),
            estimated_cost=Decimal(rng.randrange(1, 20_000)).scaleb(-6),
            execution_time_ms=rng.randrange(300, 4_000),
        )
