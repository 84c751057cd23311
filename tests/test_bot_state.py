"""Bot state (typed key-value per scope) and pair locks: what a bot keeps across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iftb.data.storage import DatabaseManager, Scope, ValidationError
from tests.support.racers import race

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
VALUES: list[Any] = [
    "text with ünïcode",
    "",
    -(2**63),
    2**70,  # beyond BIGINT: kept exactly, as text
    Decimal("-12345678901234567890.123456789012345678"),
    Decimal("0E-8"),
    T0,
    datetime(2024, 3, 1, 14, tzinfo=timezone(timedelta(hours=2))),  # read back as UTC
    {"nested": [1, 2.5, None, True], "k": "v"},
    [1, "two"],
    True,
    0.1,
]


async def test_state_reads_back_with_the_type_it_was_written_with(db: DatabaseManager) -> None:
    async with db.scope("trend-1", "paper").session() as journal:
        for number, value in enumerate(VALUES):
            await journal.state.set(f"k{number}", value)
    async with db.scope("trend-1", "paper").session(read_only=True) as journal:
        stored = await journal.state.items()
    for number, value in enumerate(VALUES):
        copy = stored[f"k{number}"]
        assert copy == value and type(copy) is type(value), (value, copy)
        if isinstance(value, Decimal):
            assert str(copy) == str(value)
    assert stored["k7"].tzinfo == UTC


async def test_a_key_is_replaced_per_scope_and_deleted(db: DatabaseManager) -> None:
    live, paper = db.scope("trend-1", "live"), db.scope("trend-1", "paper")
    async with live.session() as journal:
        await journal.state.set("balance", Decimal("100.5"))
        await journal.state.set("balance", "now a string")
    async with paper.session() as journal:
        await journal.state.set("balance", 7)
    async with live.session() as journal:
        assert await journal.state.get("balance") == "now a string"
        assert await journal.state.delete("balance") is True
        assert await journal.state.delete("balance") is False
        assert await journal.state.get("balance", "unset") == "unset"
    async with paper.session() as journal:
        assert await journal.state.items() == {"balance": 7}


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("k", None, "None is not a value"),
        ("k", datetime(2024, 1, 1), "value: .*timezone"),
        ("k", {"x": float("inf")}, "value: inf is not a finite number"),
        ("k", object(), "value: not JSON-serialisable"),
        ("k", "a\x00b", "value: NUL"),
        ("k" * 101, 1, "key: 101 characters exceed the limit of 100"),
        ("", 1, "key: a state key cannot be empty"),
        pytest.param(
            "k", 10**5000, "value: an integer this long cannot be written", id="5001-digits"
        ),
        ("k", {1: "a", "1": "b"}, "value: the key 1 is not text"),
        ("k", [{"x": {2.5: "nested"}}], "value: the key 2.5 is not text"),
    ],
)
async def test_a_bad_key_or_value_is_refused_and_nothing_is_written(
    db: DatabaseManager, key: str, value: Any, rule: str
) -> None:
    async with db.scope().session() as journal:
        with pytest.raises(ValidationError, match=rule):
            await journal.state.set(key, value)
        assert await journal.state.items() == {}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.decimals(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text().filter(lambda t: "\x00" not in t and t.isprintable())
)
async def test_any_exact_value_round_trips(db: DatabaseManager, value: Any) -> None:
    async with db.scope("prop").session() as journal:
        await journal.state.set("v", value)
        copy = await journal.state.get("v")
    assert copy == value and type(copy) is type(value) and str(copy) == str(value)


async def test_locks_end_on_time_and_block_the_sides_they_name(db: DatabaseManager) -> None:
    async with db.scope("trend-1", "live").session() as journal:
        locks = journal.locks
        await locks.lock("BTCUSDT", T0 + timedelta(hours=1), side="long", reason="stop hit", now=T0)
        await locks.lock("ETHUSDT", T0 + timedelta(hours=2), reason="news", now=T0)
        at = T0 + timedelta(minutes=30)
        assert [(lock.symbol, lock.side) for lock in await locks.active_locks(at=at)] == [
            ("BTCUSDT", "long"), ("ETHUSDT", "*")
        ]  # fmt: skip
        assert await locks.is_locked("BTCUSDT", "long", at=at)
        assert not await locks.is_locked("BTCUSDT", "short", at=at)
        assert await locks.is_locked("ETHUSDT", "short", at=at)  # both sides
        later = T0 + timedelta(minutes=90)  # BTCUSDT's lock has expired: ignored
        assert [lock.symbol for lock in await locks.active_locks(at=later)] == ["ETHUSDT"]
        assert await locks.unlock("ETHUSDT", at=later) == 1
        assert await locks.active_locks(at=later) == []
    async with db.scope("trend-1", "paper").session() as journal:
        assert await journal.locks.active_locks(at=T0 + timedelta(minutes=30)) == []


@pytest.mark.parametrize(
    ("arguments", "rule"),
    [
        ({"until": T0}, "until: .* is not after"),
        ({"until": T0 - timedelta(hours=1)}, "until: .* is not after"),
        ({"side": "up"}, "side: 'up' is not one of long, short, \\*"),
        ({"symbol": "X" * 21}, "symbol: 21 characters"),
        ({"reason": "r" * 256}, "reason: 256 characters"),
        ({"until": datetime(2030, 1, 1)}, "until: .*timezone"),
    ],
)
async def test_a_bad_lock_is_refused_and_nothing_is_written(
    db: DatabaseManager, arguments: dict[str, Any], rule: str
) -> None:
    lock = {"symbol": "BTCUSDT", "until": T0 + timedelta(hours=1), "now": T0} | arguments
    async with db.scope().session() as journal:
        with pytest.raises(ValidationError, match=rule):
            await journal.locks.lock(**lock)
        assert await journal.locks.active_locks(at=T0) == []


async def test_a_backtest_run_has_its_own_state(db: DatabaseManager) -> None:
    from iftb.data.storage import BacktestRunRepository

    async with db.get_session() as session:
        run = await BacktestRunRepository(session).start(
            "trend-1", "ema", timeframe="1h", data_start=T0, data_end=T0
        )
    scope = Scope("trend-1", "backtest", run.id)
    async with db.scope(scope.bot, scope.mode, scope.run_id).session() as journal:
        await journal.state.set("k", 1)
        await journal.state.set("k", 2)
        assert await journal.state.items() == {"k": 2}
    async with db.scope("trend-1", "live").session() as journal:
        assert await journal.state.items() == {}


RACER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from datetime import UTC, datetime, timedelta
from iftb.data.storage import DatabaseManager

async def main(url, name):
    async with DatabaseManager(url) as db:
        taken = 0
        for number in range(30):
            async with db.scope("racers").session() as journal:
                await journal.state.increment("counter")
                until = datetime.now(UTC) + timedelta(hours=1)
                if await journal.locks.try_lock(f"PAIR{{number}}", until, reason=name):
                    taken += 1
        for _ in range(70):
            async with db.scope("racers").session() as journal:
                await journal.state.increment("counter")
        print(taken)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_two_processes_share_a_counter_and_the_pair_locks_exactly(
    db: DatabaseManager, database_url: str, tmp_path: Path
) -> None:
    """Two bots each increment one counter 100 times and try to lock the same 30 pairs: the
    counter ends at 200 (a read-then-set lost updates: 117), and every pair is locked once,
    by one of them (a blind ``lock`` let both take all 30)."""
    await race(tmp_path, RACER, [database_url, "a"], [database_url, "b"])
    async with db.scope("racers").session(read_only=True) as journal:
        assert await journal.state.get("counter") == 200
        locks = await journal.locks.active_locks()
    assert sorted(lock.symbol for lock in locks) == sorted(f"PAIR{n}" for n in range(30))


async def test_compare_and_set_writes_only_over_the_value_expected(db: DatabaseManager) -> None:
    async with db.scope().session() as journal:
        state = journal.state
        assert await state.compare_and_set("mode", None, "trading")  # unset: taken
        assert not await state.compare_and_set("mode", None, "paused")
        assert not await state.compare_and_set("mode", "paused", "stopped")
        assert await state.compare_and_set("mode", "trading", "paused")
        await state.set("n", 1)
        assert not await state.compare_and_set("n", True, 2)  # True == 1, but not an int
        assert not await state.compare_and_set("n", Decimal(1), 2)
        assert await state.compare_and_set("n", 1, Decimal("2.5"))
        with pytest.raises(ValidationError, match="value: the key 1 is not text"):
            await state.compare_and_set("n", Decimal("2.5"), {1: "x"})
        with pytest.raises(ValidationError, match="holds a Decimal, not an integer"):
            await state.increment("n")
        assert await state.items() == {"mode": "paused", "n": Decimal("2.5")}


async def test_try_lock_takes_a_pair_only_where_no_lock_is_in_force(db: DatabaseManager) -> None:
    hour = T0 + timedelta(hours=1)
    async with db.scope().session() as journal:
        locks = journal.locks
        assert await locks.try_lock("BTCUSDT", hour, side="long", now=T0) is not None
        assert await locks.try_lock("BTCUSDT", hour, side="long", now=T0) is None
        assert await locks.try_lock("BTCUSDT", hour, side="*", now=T0) is None  # long is held
        assert await locks.try_lock("BTCUSDT", hour, side="short", now=T0) is not None
        assert await locks.try_lock("ETHUSDT", hour, now=T0) is not None
        assert await locks.try_lock("ETHUSDT", hour, side="short", now=T0) is None  # * holds
        later = hour + timedelta(minutes=1)  # expired: free again
        assert await locks.try_lock("BTCUSDT", later + timedelta(hours=1), now=later) is not None
        assert len(await locks.active_locks(at=T0)) == 3
