"""A tour of iftb storage: every repository, on the configured database.

With no settings this uses the embedded SQLite default; set ``DATABASE_URL`` (or ``DB_*``) to run
it against PostgreSQL (after ``iftb-db upgrade``). It is idempotent: running it twice stores the
same rows, because candles are upserted and trade ids are derived from the candles.

    python examples/storage_example.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from iftb.config import get_settings
from iftb.data.storage import (
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

SYMBOL, TIMEFRAME, EXCHANGE = "BTCUSDT", "1h", "binance"
START = datetime(2024, 1, 1, tzinfo=UTC)


def sample_bars(
    hours: int = 48, missing: frozenset[int] = frozenset({10, 11, 30})
) -> list[OHLCVBar]:
    """A deterministic hourly series with three candles missing (so there are gaps to find)."""
    bars = []
    price = Decimal("42000.00")
    for hour in range(hours):
        step = Decimal((hour * 37) % 101 - 50) / 10
        open_, close = price, price + step
        if hour not in missing:
            bars.append(
                OHLCVBar(
                    symbol=SYMBOL,
                    exchange=EXCHANGE,
                    timeframe=TIMEFRAME,
                    timestamp=START + timedelta(hours=hour),
                    open=open_,
                    high=max(open_, close) + Decimal("12.5"),
                    low=min(open_, close) - Decimal("7.25"),
                    close=close,
                    volume=Decimal("3.14159265"),
                )
            )
        price = close
    return bars


async def main() -> None:
    settings = get_settings()
    db_manager = DatabaseManager(settings.database.get_async_url())
    await db_manager.connect()
    print(f"database: {db_manager.safe_url}")
    try:
        async with db_manager.get_session() as session:
            candles = OHLCVRepository(session)
            written = await candles.upsert_many(sample_bars())
            latest = await candles.get_latest(SYMBOL, TIMEFRAME, limit=3)
            gaps = await candles.get_gaps(SYMBOL, TIMEFRAME)
            inventory = await candles.get_inventory(SYMBOL)
        print(f"candles upserted: {written}")
        for series in inventory:
            print(
                f"  stored {series.symbol} {series.timeframe}: {series.count} candles from "
                f"{series.first:%Y-%m-%d %H:%M} to {series.last:%Y-%m-%d %H:%M}, "
                f"{series.missing} missing in {series.gaps} gaps"
            )
        for bar in latest:
            print(f"  {bar.timestamp:%Y-%m-%d %H:%M} close={bar.close}")
        for gap in gaps:
            print(
                f"  gap: {gap.missing} missing from {gap.start:%Y-%m-%d %H:%M} to {gap.end:%H:%M}"
            )

        entry, exit_ = latest[-1], latest[0]
        trade_id = f"example-{entry.timestamp:%Y%m%d%H}"
        async with db_manager.get_session() as session:
            trades = TradeRepository(session)
            if await trades.get_by_trade_id(trade_id) is None:
                await trades.insert(
                    Trade(
                        trade_id=trade_id,
                        symbol=SYMBOL,
                        exchange=EXCHANGE,
                        side="long",
                        action="open",
                        entry_price=entry.close,
                        quantity=Decimal("0.05"),
                        leverage=Decimal("5"),
                        entry_time=entry.timestamp,
                    )
                )
                closed = await trades.close_trade(
                    trade_id, exit_price=exit_.close, exit_time=exit_.timestamp, fee=Decimal("0.42")
                )
                print(f"trade {trade_id}: realized pnl {closed.realized_pnl}")
            stats = await trades.get_statistics(days=100_000)
        print(f"statistics: {stats.total_trades} trades, net pnl {stats.net_pnl}")

        async with db_manager.get_session() as session:
            positions = PositionRepository(session)
            position = await positions.get_position(SYMBOL, side="short")
            if position is None:
                position = await positions.update_position(
                    Position(
                        symbol=SYMBOL,
                        exchange=EXCHANGE,
                        side="short",
                        entry_price=exit_.close,
                        quantity=Decimal("0.01"),
                        margin=exit_.close * Decimal("0.01") / 5,
                        leverage=Decimal("5"),
                    )
                )
            await positions.mark_to_market(SYMBOL, exit_.close - Decimal("100"))
            open_positions = await positions.get_open_positions()
        for open_position in open_positions:
            print(
                f"open {open_position.side} {open_position.symbol}: "
                f"unrealized {open_position.unrealized_pnl}"
            )

        async with db_manager.get_session() as session:
            events = SystemEventRepository(session)
            await events.log_event("example_run", "info", "storage example ran", symbol=SYMBOL)
            llm_log = LLMAnalysisLogRepository(session)
            await llm_log.log(
                LLMAnalysisLog(
                    analysis_type="market_sentiment",
                    symbol=SYMBOL,
                    model_name="example-model",
                    prompt_tokens=812,
                    response_tokens=164,
                    total_tokens=976,
                    estimated_cost=Decimal("0.004128"),
                    execution_time_ms=1840,
                )
            )
            recent = await events.get_recent_events(limit=1)
            usage = await llm_log.get_usage_summary(days=100_000)
        print(f"latest event: {recent[0].message}")
        for group in usage:
            print(f"llm usage: {group}")
    finally:
        await db_manager.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
