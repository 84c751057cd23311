"""Hostile and broken input, property-based, on both backends alike: what fits comes back
verbatim, what does not is a ValidationError and nothing is written — SQLite accepts nothing
that PostgreSQL would refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    LLMAnalysisLog,
    LLMAnalysisLogModel,
    LLMAnalysisLogRepository,
    OHLCVBar,
    OHLCVModel,
    OHLCVRepository,
    SystemEventModel,
    SystemEventRepository,
    TradeModel,
    TradeRepository,
    ValidationError,
)
from tests.factories import make_trade

T0 = datetime(2024, 6, 1, tzinfo=UTC)
examples = settings(
    max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)


def scaled(places: int, digits: int) -> st.SearchStrategy[Decimal]:
    """Any finite Decimal that fits NUMERIC(digits, places)."""
    limit = Decimal(10) ** (digits - places) - Decimal(10) ** -places
    return st.decimals(min_value=0, max_value=limit, places=places, allow_nan=False)


@examples
@given(
    cost=scaled(6, 10),
    temperature=scaled(2, 3).filter(lambda t: t <= 2),
    prompt=st.text(max_size=300).filter(lambda s: "\x00" not in s),
)
async def test_what_fits_round_trips_exactly(
    session: AsyncSession, cost: Decimal, temperature: Decimal, prompt: str
) -> None:
    await session.execute(delete(LLMAnalysisLogModel))
    repo = LLMAnalysisLogRepository(session)
    await repo.log(
        LLMAnalysisLog(
            analysis_type="sentiment", estimated_cost=cost, temperature=temperature,
            prompt_text=prompt, response_json={"echo": prompt},
        )
    )  # fmt: skip
    [entry] = await repo.get_recent()
    assert (entry.estimated_cost, entry.prompt_text) == (cost, prompt)
    assert entry.response_json == {"echo": prompt}


# Any code point, with lone surrogates, NUL and astral characters drawn often enough to matter
# (``st.text`` would drop the surrogates, so strings are joined from single characters).
ANY_CHARACTER = st.sampled_from(["\ud800", "\udfff", "\x00", "🚀"]) | st.characters(
    exclude_categories=()
)


def any_text(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(ANY_CHARACTER, max_size=max_size).map("".join)


def storable(text: str) -> bool:
    """What both backends can hold: no NUL, no lone surrogate (not valid UTF-8)."""
    return "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


@examples
@given(text=any_text(40))
async def test_any_text_round_trips_exactly_or_is_refused_naming_the_field(
    session: AsyncSession, text: str
) -> None:
    await session.execute(delete(SystemEventModel))
    repo = SystemEventRepository(session)
    if not storable(text):
        with pytest.raises(ValidationError, match="^message: "):
            await repo.log_event("probe", "info", text)
        assert await session.scalar(select(func.count()).select_from(SystemEventModel)) == 0
        return
    await repo.log_event("probe", "info", text)
    [event] = await repo.get_recent_events()
    assert event.message == text


# JSONB keeps numbers as NUMERIC: a float printed with an exponent (|x| >= 1e16) comes back as
# an int, so the floats here stay below that; NaN and ±Infinity are included (refused).
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(min_value=-1e15, max_value=1e15)
    | st.sampled_from([float("nan"), float("inf"), float("-inf")])
    | any_text(8)
)
JSON_DOCUMENTS = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text(8), inner, max_size=4),
    max_leaves=12,
)


def json_storable(document: Any) -> bool:
    if isinstance(document, float):
        return document == document and abs(document) != float("inf")
    if isinstance(document, str):
        return storable(document)
    if isinstance(document, list):
        return all(json_storable(item) for item in document)
    if isinstance(document, dict):
        return all(storable(k) and json_storable(v) for k, v in document.items())
    return True


@examples
@given(document=JSON_DOCUMENTS)
async def test_any_json_document_round_trips_or_is_refused_naming_the_field(
    session: AsyncSession, document: Any
) -> None:
    await session.execute(delete(SystemEventModel))
    repo = SystemEventRepository(session)
    if not json_storable(document):
        with pytest.raises(ValidationError, match="^details: "):
            await repo.log_event("probe", "info", "m", details={"doc": document})
        assert await session.scalar(select(func.count()).select_from(SystemEventModel)) == 0
        return
    await repo.log_event("probe", "info", "m", details={"doc": document})
    [event] = await repo.get_recent_events()
    assert event.details == {"doc": document}


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
ANY_ZONE = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)


@examples
@given(moment=st.datetimes(timezones=ANY_ZONE) | st.sampled_from([EARLIEST, LATEST]))
async def test_any_aware_time_round_trips_exactly_or_is_refused_naming_the_field(
    session: AsyncSession, moment: datetime
) -> None:
    await session.execute(delete(TradeModel))
    repo = TradeRepository(session)
    try:
        in_range = EARLIEST <= moment.astimezone(UTC) <= LATEST
    except OverflowError:  # year 1 east of UTC, or 9999-12-31 west of it
        in_range = False
    if not in_range:
        with pytest.raises(ValidationError, match="^entry_time: .*outside the supported range"):
            await repo.insert(make_trade(entry_time=moment))
        assert await session.scalar(select(func.count()).select_from(TradeModel)) == 0
        return
    stored = await repo.get_by_id(await repo.insert(make_trade(entry_time=moment)))
    assert stored is not None and stored.entry_time == moment
    assert stored.entry_time.tzinfo == UTC


@examples
@given(
    tokens=st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from([2**31 - 1, 2**31])
)
async def test_any_integer_fits_its_integer_column_or_is_refused_naming_the_field(
    session: AsyncSession, tokens: int
) -> None:
    await session.execute(delete(LLMAnalysisLogModel))
    repo = LLMAnalysisLogRepository(session)
    if not 0 <= tokens <= 2**31 - 1:
        with pytest.raises(ValidationError, match="^prompt_tokens: "):
            await repo.log(LLMAnalysisLog(analysis_type="sentiment", prompt_tokens=tokens))
        assert await session.scalar(select(func.count()).select_from(LLMAnalysisLogModel)) == 0
        return
    await repo.log(LLMAnalysisLog(analysis_type="sentiment", prompt_tokens=tokens))
    [entry] = await repo.get_recent()
    assert entry.prompt_tokens == tokens


HOSTILE = [
    'O\'Reilly "quoted"',
    "'; DROP TABLE ohlcv; --",
    "1; SELECT pg_sleep(10)",
    "Robert'); DELETE FROM trades WHERE ('1'='1",
    "🚀🌕 to the moon 🦍",
    "\\x00 written, not a NUL",
    "tab\tnew\nline\r\nend",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑ ≠ ≤",
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_strings_that_look_like_sql_are_data(session: AsyncSession, text: str) -> None:
    repo = SystemEventRepository(session)
    await repo.log_event("probe", "info", text, details={text: [text]}, symbol="BTC'USDT")
    [event] = await repo.get_recent_events()
    assert (event.message, event.details, event.symbol) == (text, {text: [text]}, "BTC'USDT")
    assert await session.scalar(select(func.count()).select_from(OHLCVModel)) == 0


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"message": "a\x00b"}, "message: NUL characters cannot be stored"),
        ({"details": {"k": "a\x00b"}}, "details: NUL characters cannot be stored"),
        ({"event_type": "x" * 51}, "event_type: 51 characters exceed the limit of 50"),
        ({"symbol": "S" * 21}, "symbol: 21 characters exceed the limit of 20"),
        ({"details": {"when": datetime.now(UTC)}}, "details: not JSON-serialisable"),
        ({"details": {"x": float("nan")}}, "details: nan is not a finite number"),
        ({"severity": "fatal"}, "severity: 'fatal' is not one of"),
        ({"position_id": 2**63}, "position_id"),
    ],
)
async def test_what_postgresql_would_refuse_sqlite_refuses_too(
    session: AsyncSession, fields: dict[str, Any], rule: str
) -> None:
    event = {"event_type": "probe", "severity": "info", "message": "m"} | fields
    with pytest.raises(ValidationError, match=rule.replace("(", r"\(")):
        await SystemEventRepository(session).log_event(**event)
    assert await session.scalar(select(func.count()).select_from(SystemEventModel)) == 0


BREAKS = {
    "low above open": lambda row: row | {"low": row["open"] + 1},
    "high below close": lambda row: row | {"high": row["close"] - 1},
    "zero price": lambda row: row | {"open": Decimal(0)},
    "negative volume": lambda row: row | {"volume": Decimal(-1)},
    "NaN close": lambda row: row | {"close": Decimal("NaN")},
    "infinite high": lambda row: row | {"high": Decimal("Infinity")},
    "off the boundary": lambda row: row | {"timestamp": row["timestamp"] + timedelta(minutes=1)},
    "naive time": lambda row: row | {"timestamp": row["timestamp"].replace(tzinfo=None)},
    "13 integer digits": lambda row: row | {"high": Decimal("1234567890123")},
    "9 decimal places": lambda row: row | {"volume": Decimal("0.123456789")},
    "unknown timeframe": lambda row: row | {"timeframe": "2h30"},
    "long symbol": lambda row: row | {"symbol": "X" * 21},
}


@examples
@given(
    size=st.integers(min_value=1, max_value=40),
    broken_at=st.integers(min_value=0, max_value=39),
    breakage=st.sampled_from(sorted(BREAKS)),
)
async def test_any_broken_bar_rejects_the_batch_and_writes_nothing(
    session: AsyncSession, size: int, broken_at: int, breakage: str
) -> None:
    rows = [
        {"symbol": "BTCUSDT", "exchange": "binance", "timeframe": "1h",
         "timestamp": T0 + timedelta(hours=h), "open": Decimal(100), "high": Decimal(102),
         "low": Decimal(99), "close": Decimal(101), "volume": Decimal(5)}
        for h in range(size)
    ]  # fmt: skip
    index = broken_at % size
    rows[index] = BREAKS[breakage](rows[index])
    with pytest.raises(ValidationError) as caught:
        await OHLCVRepository(session).upsert_many([OHLCVBar(**row) for row in rows])
    assert caught.value.field is not None or "timeframe" in str(caught.value)
    assert await session.scalar(select(func.count()).select_from(OHLCVModel)) == 0
