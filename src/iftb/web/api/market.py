"""The stored market data: which candle series exist, and the candles of one, for charts."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, cast

from fastapi import APIRouter, Query

from iftb.data.storage import OHLCVBar, OHLCVRepository
from iftb.data.storage.enums import PriceType
from iftb.data.storage.validation import EARLIEST, LATEST
from iftb.web.api.models import CandleOut, CandlePageOut, SeriesOut
from iftb.web.deps import Database, End, Exchange, Limit, Start, Symbol, utc

router = APIRouter(tags=["market"])
Timeframe = Annotated[str, Query(min_length=1, max_length=3, description="e.g. 1m, 1h, 1d")]
PriceKind = Annotated[str, Query(min_length=1, max_length=10, description="trade, mark, index")]


@router.get("/inventory", response_model=list[SeriesOut])
async def inventory(manager: Database) -> list[SeriesOut]:
    """Every stored candle series: first and last candle, count, expected, missing and gaps
    (``OHLCVRepository.get_inventory``: one read of the candle catalog)."""
    async with manager.get_session(read_only=True) as session:
        series = await OHLCVRepository(session).get_inventory()
    return [
        SeriesOut(
            symbol=one.symbol,
            exchange=one.exchange,
            timeframe=one.timeframe,
            price_type=one.price_type,
            first=one.first,
            last=one.last,
            count=one.count,
            expected=one.expected,
            missing=one.missing,
            gaps=one.gaps,
        )
        for one in series
    ]


@router.get("/candles", response_model=CandlePageOut)
async def candles(
    manager: Database,
    symbol: Symbol,
    timeframe: Timeframe,
    exchange: Exchange = "binance",
    price_type: PriceKind = PriceType.TRADE.value,
    start: Start = None,
    end: End = None,
    limit: Limit = 100,
) -> CandlePageOut:
    """Up to ``limit`` candles opening in ``[start, end]``, oldest first; ``next_start`` is
    where the next page starts (``stream_range``: a cursor, so only this page is read)."""
    first, last = utc(start) or EARLIEST, utc(end) or LATEST
    bars = []
    async with manager.get_session(read_only=True) as session:
        # an async generator: closed at once when the page is full, which ends the cursor
        stream = OHLCVRepository(session).stream_range(
            symbol,
            timeframe,
            first,
            last,
            exchange,
            chunk_size=limit + 1,
            price_type=price_type,
        )
        async with aclosing(cast(AsyncGenerator[OHLCVBar, None], stream)) as candles:
            async for bar in candles:
                bars.append(bar)
                if len(bars) > limit:
                    break
    following = bars[limit].timestamp if len(bars) > limit else None
    return CandlePageOut(
        symbol=symbol,
        exchange=exchange,
        timeframe=timeframe,
        price_type=price_type,
        candles=[
            CandleOut(
                time=bar.timestamp,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            )
            for bar in bars[:limit]
        ],
        next_start=following,
    )
