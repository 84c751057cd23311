"""``demo``: the storage layer on real candles, in under a minute, on the embedded default.

Migrates, imports the candle file that ships with the package, records a small scripted trading
session on those candles (trades, positions, events, LLM calls), rolls up daily performance, and
prints coverage, gaps, statistics and LLM usage. Running it again re-imports idempotently and
leaves the recorded session as it is.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.resources import as_file, files
from typing import Annotated

import typer
from rich.rule import Rule
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.commands.audit import usage_table
from iftb.commands.candles import coverage_table, gaps_table
from iftb.commands.common import DatabaseUrl, console, open_database, run
from iftb.commands.journal import statistics_table
from iftb.data.candle_import import ImportSummary, import_candle_file
from iftb.data.storage import (
    DailyPerformanceRepository,
    DatabaseManager,
    LLMAnalysisLog,
    LLMAnalysisLogRepository,
    OHLCVBar,
    OHLCVRepository,
    Position,
    PositionRepository,
    SystemEventRepository,
    Trade,
    TradeRepository,
)

app = typer.Typer()

SAMPLE_FILE = "coinbase-BTCUSD-1h.csv.gz"  # real candles; source and licence in its README
SYMBOL, TIMEFRAME, EXCHANGE = "BTCUSD", "1h", "coinbase"
STARTING_BALANCE = Decimal("10000")
SESSION_DAYS = 30
HOLD_CANDLES = 12  # each demo trade is held for half a day
LEVERAGE = Decimal(3)
QUANTITY = Decimal("0.05")
FEE_RATE = Decimal("0.0004")  # a typical futures taker fee


@app.command()
def demo(
    days: Annotated[
        int, typer.Option(help="Length of the scripted trading session.")
    ] = SESSION_DAYS,
    database_url: DatabaseUrl = None,
) -> None:
    """Import real candles, record a scripted trading session, and report on it all."""

    async def work() -> None:
        async with open_database(database_url) as manager:
            console.print(Rule(f"iftb storage demo on {manager.safe_url}"))
            summary = await _import_sample(manager)
            console.print(
                f"imported {SAMPLE_FILE}: {summary.rows:,} rows, {summary.inserted:,} new, "
                f"{summary.updated:,} already stored, {summary.rows_per_second:,.0f} rows/s"
            )
            recorded = await _record_session(manager, days)
            console.print(
                f"trading session: {recorded} trades recorded"
                if recorded
                else "trading session: already recorded by an earlier run"
            )
            await _report(manager, days)

    run(work)


async def _import_sample(manager: DatabaseManager) -> ImportSummary:
    with as_file(files("iftb") / "sample_data" / SAMPLE_FILE) as path:
        return await import_candle_file(manager, path, SYMBOL, TIMEFRAME, EXCHANGE)


async def _record_session(manager: DatabaseManager, days: int) -> int:
    """A deterministic session over the last ``days`` days of the sample: a trade every day,
    alternating long and short, each held for ``HOLD_CANDLES`` candles."""
    async with manager.get_session() as session:
        ohlcv = OHLCVRepository(session)
        last = await ohlcv.get_last_timestamp(SYMBOL, TIMEFRAME, EXCHANGE)
        assert last is not None, "the sample import stored no candles"
        bars = await ohlcv.get_range(SYMBOL, TIMEFRAME, last - timedelta(days=days), last, EXCHANGE)
        if await TradeRepository(session).get_by_trade_id(_trade_id(bars[0])) is not None:
            return 0
    rng = random.Random(7)
    recorded = 0
    for index in range(0, len(bars) - HOLD_CANDLES, 24):
        entry, exit_ = bars[index], bars[index + HOLD_CANDLES]
        side = "long" if recorded % 2 == 0 else "short"
        async with manager.get_session() as session:
            await _open(session, entry, side, rng)
        async with manager.get_session() as session:
            await _close(session, entry, exit_, bars[index : index + HOLD_CANDLES + 1])
        recorded += 1
    async with manager.get_session() as session:
        daily = DailyPerformanceRepository(session)
        first_day, last_day = bars[0].timestamp.date(), bars[-1].timestamp.date()
        day, balance = first_day, STARTING_BALANCE
        while day <= last_day:
            balance = (await daily.rollup(day, EXCHANGE, balance)).ending_balance or balance
            day += timedelta(days=1)
    return recorded


async def _open(session: AsyncSession, bar: OHLCVBar, side: str, rng: random.Random) -> None:
    latency = rng.randint(600, 4_000)
    prompt_tokens, response_tokens = rng.randint(700, 1_500), rng.randint(60, 240)
    status = "timeout" if latency > 3_800 else "success"
    await LLMAnalysisLogRepository(session).log(
        LLMAnalysisLog(
            analysis_type="entry_signal",
            symbol=SYMBOL,
            exchange=EXCHANGE,
            model_name=rng.choice(("claude-sonnet", "claude-haiku")),
            prompt_text=f"{SYMBOL} {TIMEFRAME} close {bar.close}: enter {side}?",
            response_text=f'{{"action": "{side}", "confidence": 0.{rng.randint(55, 90)}}}',
            prompt_tokens=prompt_tokens,
            response_tokens=response_tokens,
            estimated_cost=Decimal(prompt_tokens * 3 + response_tokens * 15) / 1_000_000,
            execution_time_ms=latency,
            status=status,
        )
    )
    await TradeRepository(session).insert(
        Trade(
            trade_id=_trade_id(bar),
            symbol=SYMBOL,
            exchange=EXCHANGE,
            side=side,
            action="open",
            entry_price=bar.close,
            quantity=QUANTITY,
            leverage=LEVERAGE,
            entry_time=bar.timestamp,
            fee=(bar.close * QUANTITY * FEE_RATE).quantize(Decimal("0.00000001")),
            signal_score=Decimal(f"0.{rng.randint(5500, 9000)}"),
        )
    )
    await PositionRepository(session).update_position(
        Position(
            symbol=SYMBOL,
            exchange=EXCHANGE,
            side=side,
            entry_price=bar.close,
            quantity=QUANTITY,
            leverage=LEVERAGE,
            margin=(bar.close * QUANTITY / LEVERAGE).quantize(Decimal("0.00000001")),
            entry_time=bar.timestamp,
            trade_id=_trade_id(bar),
        )
    )
    await SystemEventRepository(session).log_event(
        "trade_opened",
        "info",
        f"opened {side} {QUANTITY} {SYMBOL} at {bar.close}",
        symbol=SYMBOL,
        exchange=EXCHANGE,
        trade_id=_trade_id(bar),
    )


async def _close(
    session: AsyncSession, entry: OHLCVBar, exit_: OHLCVBar, held: list[OHLCVBar]
) -> None:
    positions = PositionRepository(session)
    for bar in held[1:-1:4]:
        await positions.mark_to_market(SYMBOL, bar.close, EXCHANGE)
    [position] = await positions.get_open_positions(EXCHANGE)
    assert position.id is not None
    await positions.close_position(position.id, exit_price=exit_.close)
    fee = (exit_.close * QUANTITY * FEE_RATE).quantize(Decimal("0.00000001"))
    trade = await TradeRepository(session).close_trade(
        _trade_id(entry), exit_.close, exit_.timestamp, fee=fee
    )
    severity = "warning" if (trade.realized_pnl or 0) < 0 else "info"
    await SystemEventRepository(session).log_event(
        "trade_closed",
        severity,
        f"closed {trade.side} at {exit_.close}: pnl {trade.realized_pnl}",
        symbol=SYMBOL,
        exchange=EXCHANGE,
        trade_id=trade.trade_id,
        details={"pnl": str(trade.realized_pnl), "pnl_pct": str(trade.realized_pnl_pct)},
    )


async def _report(manager: DatabaseManager, days: int) -> None:
    async with manager.get_session() as session:
        ohlcv = OHLCVRepository(session)
        coverage = await ohlcv.get_coverage()
        gaps = await ohlcv.get_gaps(SYMBOL, TIMEFRAME, EXCHANGE)
        # the sample is history: widen the "last N days" windows to reach back to it
        window = (datetime.now(UTC) - coverage[0].last).days + days + 2 if coverage else days
        statistics = await TradeRepository(session).get_statistics(
            window, EXCHANGE, starting_balance=STARTING_BALANCE
        )
        usage = await LLMAnalysisLogRepository(session).get_usage_summary(days=window)
        counts = await SystemEventRepository(session).count_by_severity()
    console.print(coverage_table(coverage))
    console.print(gaps_table(gaps[:10], f"gaps in {SYMBOL} {TIMEFRAME} (the first 10)"))
    console.print(statistics_table(statistics, "statistics of the scripted session"))
    console.print(usage_table(usage, "model", "LLM usage of the scripted session"))
    console.print("system events: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _trade_id(bar: OHLCVBar) -> str:
    return f"demo-{bar.symbol}-{bar.timestamp:%Y%m%dT%H%M}"
