"""``demo``: the storage layer on real candles, in under a minute, on the embedded default.

Migrates, imports the candle file that ships with the package, records a small scripted trading
session on those candles (trades, positions, events, LLM calls) in the default live scope, the
same schedule as a paper session of bot ``demo`` (simulated fills with slippage) and a backtest
run of that bot (its trades written in one bulk call), rolls up daily performance, and prints
coverage, gaps, statistics, LLM usage and live vs paper vs backtest side by side. Running it again
re-imports idempotently and leaves the recorded sessions and run as they are.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib.resources import as_file, files
from typing import Annotated, Any

import typer
from rich.rule import Rule
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.commands.audit import usage_table
from iftb.commands.candles import gaps_table
from iftb.commands.catalog import inventory_table
from iftb.commands.common import DatabaseUrl, console, open_database, run
from iftb.commands.journal import statistics_table
from iftb.commands.scopes import comparison_table
from iftb.data.candle_import import ImportSummary, import_candle_file
from iftb.data.storage import (
    DEFAULT_SCOPE,
    BacktestRunRepository,
    DailyPerformanceRepository,
    DatabaseManager,
    LLMAnalysisLog,
    LLMAnalysisLogRepository,
    OHLCVBar,
    OHLCVRepository,
    Position,
    PositionRepository,
    Scope,
    ScopeRepository,
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
CENTS = Decimal("0.00000001")
DEMO_BOT = "demo"
PAPER = Scope(DEMO_BOT, "paper")
SLIPPAGE_BP = 3  # paper fills: up to 3 basis points off the close, against the trade
STRATEGY = "momentum-24h"
LOOKBACK, EVERY = 24, 12  # backtest: trade every 12 candles in the direction of the last 24


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
            bars = await _session_bars(manager, days)
            recorded = await _record_session(manager, bars)
            console.print(
                f"trading session: {recorded} trades recorded"
                if recorded
                else "trading session: already recorded by an earlier run"
            )
            recorded = await _record_paper(manager, bars)
            console.print(
                f"paper session ({PAPER}): {recorded} trades recorded"
                if recorded
                else f"paper session ({PAPER}): already recorded by an earlier run"
            )
            console.print(await _record_backtest(manager, bars))
            await _report(manager, days)

    run(work)


async def _import_sample(manager: DatabaseManager) -> ImportSummary:
    with as_file(files("iftb") / "sample_data" / SAMPLE_FILE) as path:
        return await import_candle_file(manager, path, SYMBOL, TIMEFRAME, EXCHANGE)


async def _session_bars(manager: DatabaseManager, days: int) -> list[OHLCVBar]:
    """The last ``days`` days of the sample, which every session of the demo trades on."""
    async with manager.get_session(read_only=True) as session:
        ohlcv = OHLCVRepository(session)
        last = await ohlcv.get_last_timestamp(SYMBOL, TIMEFRAME, EXCHANGE)
        assert last is not None, "the sample import stored no candles"
        return await ohlcv.get_range(SYMBOL, TIMEFRAME, last - timedelta(days=days), last, EXCHANGE)


def _schedule(bars: list[OHLCVBar]) -> list[tuple[int, str]]:
    """The scripted sessions' trades: one a day, alternating long and short, each held for
    ``HOLD_CANDLES`` candles (index of the entry bar, side)."""
    starts = range(0, len(bars) - HOLD_CANDLES, 24)
    return [(index, "long" if number % 2 == 0 else "short") for number, index in enumerate(starts)]


async def _record_session(manager: DatabaseManager, bars: list[OHLCVBar]) -> int:
    """The live session, in the default scope, with positions, events and LLM calls."""
    async with manager.get_session() as session:
        if await TradeRepository(session).get_by_trade_id(_trade_id(bars[0])) is not None:
            return 0
    rng = random.Random(7)
    recorded = 0
    for index, side in _schedule(bars):
        entry, exit_ = bars[index], bars[index + HOLD_CANDLES]
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


async def _record_paper(manager: DatabaseManager, bars: list[OHLCVBar]) -> int:
    """The live session's schedule as bot ``demo`` trades it on paper: fills a few basis points
    off the close (seeded), in one unit of work of the paper scope; its state kept there."""
    paper = manager.scope(PAPER.bot, PAPER.mode)
    async with paper.session() as journal:
        if await journal.trades.get_by_trade_id(_trade_id(bars[0])) is not None:
            return 0
        rng = random.Random(11)
        for index, side in _schedule(bars):
            entry, exit_ = bars[index], bars[index + HOLD_CANDLES]
            entry_price = _slipped(entry.close, side, rng, entering=True)
            exit_price = _slipped(exit_.close, side, rng, entering=False)
            await journal.trades.insert(_trade(_trade_id(entry), side, entry, entry_price))
            await journal.trades.close_trade(
                _trade_id(entry), exit_price, exit_.timestamp, fee=_fee(exit_price)
            )
        statistics = await journal.trades.get_statistics(
            10**5, EXCHANGE, starting_balance=STARTING_BALANCE
        )
        await journal.state.set("balance", STARTING_BALANCE + statistics.net_pnl)
        await journal.state.set("trades", statistics.total_trades)
        await journal.state.set("last_candle", bars[-1].timestamp)
        await journal.state.set("strategy", {"name": "scripted", "hold": HOLD_CANDLES})
        return statistics.total_trades


async def _record_backtest(manager: DatabaseManager, bars: list[OHLCVBar]) -> str:
    """A backtest run of bot ``demo`` on the same candles: started, its trades written in one
    bulk call, finished (its statistics stored), all in one unit of work."""
    async with manager.get_session() as session:
        runs = BacktestRunRepository(session)
        done = await runs.latest(DEMO_BOT, STRATEGY)
        if done is not None:
            return f"backtest run {done.id} ({done.scope}): already recorded by an earlier run"
        started = await runs.start(
            DEMO_BOT,
            STRATEGY,
            strategy_version="1",
            timeframe=TIMEFRAME,
            data_start=bars[0].timestamp,
            data_end=bars[-1].timestamp,
            config={"lookback": LOOKBACK, "every": EVERY, "hold": HOLD_CANDLES},
        )
        trades = [
            _backtest_trade(bars, index)
            for index in range(LOOKBACK, len(bars) - HOLD_CANDLES, EVERY)
        ]
        recorded = await runs.record_trades(started.id, trades)
        await runs.finish(started.id, starting_balance=STARTING_BALANCE)
    return f"backtest run {started.id} ({started.scope}): {recorded} trades recorded in one write"


def _backtest_trade(bars: list[OHLCVBar], index: int) -> Trade:
    """A closed trade in the direction of the last ``LOOKBACK`` candles, with its PnL."""
    entry, exit_ = bars[index], bars[index + HOLD_CANDLES]
    side = "long" if entry.close >= bars[index - LOOKBACK].close else "short"
    fees = _fee(entry.close) + _fee(exit_.close)
    move = (exit_.close - entry.close) * (1 if side == "long" else -1)
    pnl = (move * QUANTITY - fees).quantize(CENTS, rounding=ROUND_HALF_UP)
    margin = entry.close * QUANTITY / LEVERAGE
    return _trade(
        f"bt-{entry.timestamp:%Y%m%dT%H%M}",
        side,
        entry,
        entry.close,
        action="close",
        exit_price=exit_.close,
        exit_time=exit_.timestamp,
        fee=fees,
        realized_pnl=pnl,
        realized_pnl_pct=(pnl / margin * 100).quantize(Decimal("0.0001")),
    )


def _trade(trade_id: str, side: str, bar: OHLCVBar, price: Decimal, **fields: Any) -> Trade:
    """A demo trade entered at ``price`` on ``bar`` (open, with its entry fee, unless
    ``fields`` say otherwise)."""
    values: dict[str, Any] = {
        "trade_id": trade_id,
        "symbol": SYMBOL,
        "exchange": EXCHANGE,
        "side": side,
        "action": "open",
        "entry_price": price,
        "quantity": QUANTITY,
        "leverage": LEVERAGE,
        "entry_time": bar.timestamp,
        "fee": _fee(price),
    }
    return Trade(**(values | fields))


def _slipped(price: Decimal, side: str, rng: random.Random, *, entering: bool) -> Decimal:
    """A paper fill: up to ``SLIPPAGE_BP`` basis points worse than ``price``."""
    worse = Decimal(rng.randint(0, SLIPPAGE_BP)) / 10_000
    buying = (side == "long") == entering
    return (price * (1 + worse if buying else 1 - worse)).quantize(CENTS)


def _fee(price: Decimal) -> Decimal:
    return (price * QUANTITY * FEE_RATE).quantize(CENTS)


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
        _trade(
            _trade_id(bar),
            side,
            bar,
            bar.close,
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
            margin=(bar.close * QUANTITY / LEVERAGE).quantize(CENTS),
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
    fee = _fee(exit_.close)
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
        coverage = await ohlcv.get_inventory()
        gaps = await ohlcv.get_gaps(SYMBOL, TIMEFRAME, EXCHANGE)
        # the sample is history: widen the "last N days" windows to reach back to it
        window = (datetime.now(UTC) - coverage[0].last).days + days + 2 if coverage else days
        statistics = await TradeRepository(session).get_statistics(
            window, EXCHANGE, starting_balance=STARTING_BALANCE
        )
        usage = await LLMAnalysisLogRepository(session).get_usage_summary(days=window)
        counts = await SystemEventRepository(session).count_by_severity()
        backtest = await BacktestRunRepository(session).latest(DEMO_BOT, STRATEGY)
        scopes = [DEFAULT_SCOPE, PAPER, *([backtest.scope] if backtest else [])]
        compared = await ScopeRepository(session).compare(
            scopes, exchange=EXCHANGE, starting_balance=STARTING_BALANCE
        )
    console.print(inventory_table(coverage))
    console.print(gaps_table(gaps[:10], f"gaps in {SYMBOL} {TIMEFRAME} (the first 10)"))
    console.print(statistics_table(statistics, "statistics of the scripted session"))
    console.print(usage_table(usage, "model", "LLM usage of the scripted session"))
    console.print("system events: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(comparison_table(compared, "live vs paper vs backtest (all time, coinbase)"))


def _trade_id(bar: OHLCVBar) -> str:
    return f"demo-{bar.symbol}-{bar.timestamp:%Y%m%dT%H%M}"
