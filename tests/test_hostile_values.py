"""Values that break a driver or a backend's limits are refused at the edge with a
ValidationError naming the field (and the row in a batch), the same on both backends, before
anything is sent: lone surrogates, deep or non-finite JSON, timestamps outside the supported
range, a caller's narrow decimal context, integers past their column, candles from the future."""

from __future__ import annotations

import decimal
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage import (
    DailyPerformance,
    DailyPerformanceModel,
    DailyPerformanceRepository,
    LLMAnalysisLog,
    LLMAnalysisLogModel,
    LLMAnalysisLogRepository,
    OHLCVBar,
    OHLCVModel,
    OHLCVRepository,
    PositionRepository,
    SystemEvent,
    SystemEventModel,
    SystemEventRepository,
    TradeModel,
    TradeRepository,
    ValidationError,
    parse_timeframe,
)
from iftb.data.storage.validation import candle_opened_rule
from tests.factories import make_position, make_trade

SURROGATE = "\ud800"
LATEST = datetime(9999, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


async def count(session: AsyncSession, model: type[DeclarativeBase]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def nested(depth: int) -> Any:
    """A JSON document ``depth`` containers deep."""
    document: Any = "leaf"
    for level in range(depth):
        document = [document] if level % 2 else {"k": document}
    return document


def candle(timestamp: datetime, timeframe: str = "1h") -> OHLCVBar:
    return OHLCVBar(
        symbol="BTCUSDT", exchange="binance", timeframe=timeframe, timestamp=timestamp,
        open=Decimal(100), high=Decimal(102), low=Decimal(99), close=Decimal(101),
        volume=Decimal(5),
    )  # fmt: skip


# --- text and JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"message": f"a{SURROGATE}b"}, "message"),
        ({"symbol": f"BTC{SURROGATE}"}, "symbol"),
        ({"details": {"k": [f"x{SURROGATE}"]}}, "details"),
        ({"details": {f"key{SURROGATE}": 1}}, "details"),
    ],
)
async def test_a_lone_surrogate_is_refused_naming_the_field(
    session: AsyncSession, fields: dict[str, Any], field: str
) -> None:
    event = {"event_type": "probe", "severity": "info", "message": "m"} | fields
    with pytest.raises(ValidationError, match=f"^{field}: .*surrogate") as caught:
        await SystemEventRepository(session).log_event(**event)
    assert caught.value.field == field
    assert await count(session, SystemEventModel) == 0


async def test_a_lone_surrogate_in_a_batch_names_the_row(session: AsyncSession) -> None:
    events = [SystemEvent(event_type="probe", severity="info", message="ok") for _ in range(3)]
    events[2].stack_trace = f"frame {SURROGATE}"
    with pytest.raises(ValidationError, match="^row 2: stack_trace: .*surrogate"):
        await SystemEventRepository(session).log_events(events)
    assert await count(session, SystemEventModel) == 0


async def test_a_valid_surrogate_pair_is_not_a_lone_surrogate(session: AsyncSession) -> None:
    repo = SystemEventRepository(session)
    await repo.log_event("probe", "info", "🚀", details={"🚀": "🌕"})
    [event] = await repo.get_recent_events()
    assert (event.message, event.details) == ("🚀", {"🚀": "🌕"})


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
async def test_json_nested_deeper_than_64_levels_is_refused(
    session: AsyncSession, depth: int
) -> None:
    with pytest.raises(ValidationError, match="^response_json: nested deeper than 64 levels"):
        await LLMAnalysisLogRepository(session).log(
            LLMAnalysisLog(analysis_type="sentiment", response_json=nested(depth))
        )
    assert await count(session, LLMAnalysisLogModel) == 0


async def test_json_nested_64_levels_round_trips(session: AsyncSession) -> None:
    repo = LLMAnalysisLogRepository(session)
    await repo.log(LLMAnalysisLog(analysis_type="sentiment", response_json=nested(64)))
    [entry] = await repo.get_recent()
    assert entry.response_json == nested(64)


async def test_a_json_document_that_contains_itself_is_refused(session: AsyncSession) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValidationError, match="^details: "):
        await SystemEventRepository(session).log_event("probe", "info", "m", details=loop)
    assert await count(session, SystemEventModel) == 0


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
async def test_non_finite_json_numbers_are_refused(session: AsyncSession, number: float) -> None:
    with pytest.raises(ValidationError, match="^details: .*(finite|JSON)"):
        await SystemEventRepository(session).log_event(
            "probe", "info", "m", details={"x": [1, number]}
        )
    assert await count(session, SystemEventModel) == 0


# --- timestamps ------------------------------------------------------------------------------

PLUS_5 = timezone(timedelta(hours=5))
MINUS_5 = timezone(timedelta(hours=-5))
OUT_OF_RANGE = {
    "year 1": datetime(1, 1, 1, tzinfo=UTC),
    "year 1 east of UTC": datetime(1, 1, 1, 3, tzinfo=PLUS_5),
    "before 1970": EARLIEST - timedelta(microseconds=1),
    "year 9999": datetime(9999, 1, 1, tzinfo=UTC),
    "year 9999 west of UTC": datetime(9999, 12, 31, 23, tzinfo=MINUS_5),
    "datetime.max": datetime.max.replace(tzinfo=UTC),
}


@pytest.mark.parametrize("moment", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
async def test_a_timestamp_outside_the_supported_range_is_refused(
    session: AsyncSession, moment: datetime
) -> None:
    with pytest.raises(ValidationError, match="^entry_time: .*outside the supported range"):
        await TradeRepository(session).insert(make_trade(entry_time=moment))
    assert await count(session, TradeModel) == 0


@pytest.mark.parametrize("moment", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
async def test_a_query_bound_outside_the_supported_range_is_refused(
    session: AsyncSession, moment: datetime
) -> None:
    with pytest.raises(ValidationError, match="^start: .*outside the supported range"):
        await OHLCVRepository(session).get_range("BTCUSDT", "1h", moment, LATEST)


@pytest.mark.parametrize("moment", [EARLIEST, LATEST], ids=["earliest", "latest"])
async def test_the_edges_of_the_supported_range_round_trip_exactly(
    session: AsyncSession, moment: datetime
) -> None:
    repo = TradeRepository(session)
    stored = await repo.get_by_id(await repo.insert(make_trade(entry_time=moment)))
    assert stored is not None and stored.entry_time == moment


# --- decimals --------------------------------------------------------------------------------


def narrow_decimal_context() -> AbstractContextManager[decimal.Context]:
    """What a caller might set: three digits, and rounding trapped as an error."""
    return localcontext(decimal.Context(prec=3, traps=[decimal.Inexact, decimal.Rounded]))


async def test_a_narrow_decimal_context_does_not_change_what_is_stored(
    session: AsyncSession,
) -> None:
    repo = TradeRepository(session)
    price = Decimal("123456789012.12345678")
    with narrow_decimal_context():
        trade_id = await repo.insert(make_trade(entry_price=price, quantity=Decimal("0.001")))
        stored = await repo.get_by_id(trade_id)
    assert stored is not None and stored.entry_price == price


async def test_a_narrow_decimal_context_does_not_change_computed_values(
    session: AsyncSession,
) -> None:
    repo = LLMAnalysisLogRepository(session)
    for latency in (1234, 1235, 1237):
        await repo.log(LLMAnalysisLog(analysis_type="sentiment", execution_time_ms=latency))
    with narrow_decimal_context():
        [usage] = await repo.get_usage_summary(group_by="analysis_type")
    assert usage.avg_latency_ms == Decimal("1235.33")


async def test_a_narrow_decimal_context_does_not_change_the_pnl_of_a_close(
    session: AsyncSession,
) -> None:
    repo = TradeRepository(session)
    await repo.insert(make_trade(trade_id="t", entry_price=Decimal("40000.12345678")))
    with narrow_decimal_context():
        closed = await repo.close_trade(
            "t", Decimal("41234.87654321"), datetime(2024, 1, 2, tzinfo=UTC)
        )
    assert closed.realized_pnl == Decimal("123.47530864")


# --- integers --------------------------------------------------------------------------------

LimitCall = Callable[[AsyncSession, int], Awaitable[Any]]
LIMITED: dict[str, LimitCall] = {
    "ohlcv get_latest": lambda s, n: OHLCVRepository(s).get_latest("BTCUSDT", "1h", limit=n),
    "trades get_recent": lambda s, n: TradeRepository(s).get_recent(limit=n),
    "trades get_by_symbol": lambda s, n: TradeRepository(s).get_by_symbol("BTCUSDT", limit=n),
    "events get_recent_events": lambda s, n: SystemEventRepository(s).get_recent_events(limit=n),
    "llm get_recent": lambda s, n: LLMAnalysisLogRepository(s).get_recent(limit=n),
}


@pytest.mark.parametrize("limit", [2**63, 2**64, -(2**63) - 1, 0])
@pytest.mark.parametrize("call", LIMITED.values(), ids=LIMITED.keys())
async def test_a_limit_outside_bigint_or_below_one_is_refused(
    session: AsyncSession, call: LimitCall, limit: int
) -> None:
    with pytest.raises(ValidationError, match="^limit: ") as caught:
        await call(session, limit)
    assert caught.value.field == "limit"


async def test_the_largest_bigint_limit_is_accepted(session: AsyncSession) -> None:
    assert await TradeRepository(session).get_recent(limit=2**63 - 1) == []


IdCall = Callable[[AsyncSession, int], Awaitable[Any]]
BY_ID: dict[str, tuple[IdCall, str]] = {
    "trades get_by_id": (lambda s, n: TradeRepository(s).get_by_id(n), "id"),
    "trades update": (lambda s, n: TradeRepository(s).update(n, fee=Decimal(1)), "trade_id"),
    "positions close_position": (
        lambda s, n: PositionRepository(s).close_position(n),
        "position_id",
    ),
}


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
@pytest.mark.parametrize(("call", "field"), BY_ID.values(), ids=BY_ID.keys())
async def test_an_id_past_bigint_is_refused_naming_the_argument(
    session: AsyncSession, call: IdCall, field: str, value: int
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: ") as caught:
        await call(session, value)
    assert caught.value.field == field


async def test_a_day_outside_the_supported_range_is_refused(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="^date: .*outside the supported range"):
        await DailyPerformanceRepository(session).upsert(
            DailyPerformance(date=date(1, 1, 1), exchange="binance")
        )
    assert await count(session, DailyPerformanceModel) == 0


@pytest.mark.parametrize("field", ["prompt_tokens", "response_tokens", "execution_time_ms"])
async def test_an_integer_column_refuses_values_past_32_bits(
    session: AsyncSession, field: str
) -> None:
    too_big: dict[str, Any] = {field: 2**31}
    with pytest.raises(ValidationError, match=f"^{field}: .*outside"):
        await LLMAnalysisLogRepository(session).log(
            LLMAnalysisLog(analysis_type="sentiment", **too_big)
        )
    assert await count(session, LLMAnalysisLogModel) == 0


# --- candles from the future -----------------------------------------------------------------


def current_open(timeframe: str) -> datetime:
    """The open time of the candle in progress now."""
    return parse_timeframe(timeframe).floor(datetime.now(UTC))


def future_open(timeframe: str) -> datetime:
    """Two candles after the current one: still in the future however slow the test runs."""
    tf = parse_timeframe(timeframe)
    return tf.shift(tf.floor(datetime.now(UTC)), 2)


@pytest.mark.parametrize("write", ["insert_many", "upsert_many"])
@pytest.mark.parametrize("timeframe", ["1m", "1h", "1w", "1M"])
async def test_a_candle_opening_after_the_current_one_is_refused_naming_the_row(
    session: AsyncSession, write: str, timeframe: str
) -> None:
    tf = parse_timeframe(timeframe)
    start = tf.shift(current_open(timeframe), -3)
    bars = [candle(tf.shift(start, n), timeframe) for n in range(3)]
    bars.append(candle(future_open(timeframe), timeframe))
    with pytest.raises(ValidationError, match="^row 3: timestamp: .* opens in the future") as exc:
        await getattr(OHLCVRepository(session), write)(bars)
    assert exc.value.field == "timestamp"
    assert await count(session, OHLCVModel) == 0


@pytest.mark.parametrize("timeframe", ["1m", "1h", "1d", "1w", "1M"])
async def test_the_current_candle_is_accepted(session: AsyncSession, timeframe: str) -> None:
    repo = OHLCVRepository(session)
    assert await repo.upsert_many([candle(current_open(timeframe), timeframe)]) == 1


async def test_a_record_id_past_bigint_is_refused(session: AsyncSession) -> None:
    with pytest.raises(ValidationError, match="^id: .*outside") as caught:
        await PositionRepository(session).update_position(make_position(id=2**63))
    assert caught.value.field == "id"


# --- arguments of reads ----------------------------------------------------------------------

TextCall = Callable[[AsyncSession, str], Awaitable[Any]]
FILTERED: dict[str, TextCall] = {
    "ohlcv get_latest symbol": lambda s, t: OHLCVRepository(s).get_latest(t, "1h"),
    "trades get_by_trade_id": lambda s, t: TradeRepository(s).get_by_trade_id(t),
    "trades get_by_symbol exchange": lambda s, t: TradeRepository(s).get_by_symbol("X", 5, t),
    "positions get_position symbol": lambda s, t: PositionRepository(s).get_position(t),
    "events get_recent_events type": lambda s, t: SystemEventRepository(s).get_recent_events(
        event_type=t
    ),
}


@pytest.mark.parametrize("text", [f"BTC{SURROGATE}", "BTC\x00"], ids=["surrogate", "NUL"])
@pytest.mark.parametrize("call", FILTERED.values(), ids=FILTERED.keys())
async def test_a_filter_holding_unstorable_text_is_a_validation_error(
    session: AsyncSession, call: TextCall, text: str
) -> None:
    with pytest.raises(ValidationError, match="^argument [0-9]+: (NUL|lone surrogate)"):
        await call(session, text)


@pytest.mark.parametrize("days", [10**9, 2**63])
async def test_a_window_reaching_before_1970_covers_everything_since(
    session: AsyncSession, days: int
) -> None:
    trades, calls = TradeRepository(session), LLMAnalysisLogRepository(session)
    await trades.insert(
        make_trade(entry_time=EARLIEST, exit_time=EARLIEST, action="close", exit_price=Decimal(1))
    )
    await calls.log(LLMAnalysisLog(analysis_type="sentiment"))
    assert (await trades.get_statistics(days=days)).total_trades == 1
    assert [usage.calls for usage in await calls.get_usage_summary(days=days)] == [1]


@pytest.mark.parametrize("days", [0, -1, 1.5, True])
async def test_a_window_of_less_than_one_whole_day_is_refused_naming_days(
    session: AsyncSession, days: Any
) -> None:
    with pytest.raises(ValidationError, match="^days: "):
        await TradeRepository(session).get_statistics(days=days)


@pytest.mark.parametrize("chunk_size", [0, -1, 2**63])
async def test_a_stream_chunk_size_outside_one_to_bigint_is_refused(
    session: AsyncSession, chunk_size: int
) -> None:
    stream = OHLCVRepository(session).stream_range(
        "BTCUSDT", "1h", EARLIEST, LATEST, chunk_size=chunk_size
    )
    with pytest.raises(ValidationError, match="^chunk_size: "):
        await anext(stream)


def test_a_candle_just_opened_by_an_exchange_clock_slightly_ahead_is_accepted() -> None:
    boundary = datetime(2026, 3, 1, 12, tzinfo=UTC)
    check = candle_opened_rule(now=boundary - timedelta(milliseconds=200))
    check("1m", boundary)  # the exchange's clock has passed 12:00, this host's has not yet
    check("1h", boundary)
    with pytest.raises(ValidationError, match="opens in the future"):
        check("1m", boundary + timedelta(minutes=1))
