"""The logging bridge on both backends: log records become system events, in the background."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import structlog
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from iftb.data.storage import (
    DatabaseLogHandler,
    DatabaseManager,
    Scope,
    SystemEvent,
    SystemEventModel,
    Timeouts,
)
from iftb.data.storage import SystemEventRepository as Events
from iftb.data.storage.log_bridge import MAX_TEXT
from iftb.utils import get_logger
from tests.support.pg_cluster import PostgresServer

LOGGER = "strategy.test"


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A logger of 'the bot', isolated from pytest's capture and the console."""
    logger = logging.getLogger(LOGGER)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.handlers.clear()


@pytest.fixture
async def bridge(db: DatabaseManager) -> AsyncIterator[DatabaseLogHandler]:
    handler = DatabaseLogHandler(db, flush_interval=0.05, retry_delay=0.05)
    handler.install([LOGGER, "iftb"])
    yield handler
    await handler.aclose()


async def stored(db: DatabaseManager) -> list[SystemEvent]:
    async with db.get_session() as session:
        return await Events(session).get_recent_events(limit=100_000)


async def count(db: DatabaseManager) -> int:
    async with db.get_session() as session:
        return int(await session.scalar(select(func.count()).select_from(SystemEventModel)) or 0)


async def test_plain_logging_records_map_to_columns(
    db: DatabaseManager, bridge: DatabaseLogHandler, app_logger: logging.Logger
) -> None:
    app_logger.info("routine: not persisted below WARNING")
    app_logger.warning(
        "funding rate spiked to %s",
        "0.3%",
        extra={"symbol": "BTCUSDT", "trade_id": "t-7", "details": {"rate": "0.003"}},
    )
    try:
        raise RuntimeError("exchange timeout")
    except RuntimeError:
        app_logger.exception("order failed", extra={"event_type": "order_failed"})
    await bridge.flush_async()

    failed, spiked = await stored(db)
    assert (spiked.event_type, spiked.severity, spiked.message) == (
        f"log.{LOGGER}",
        "warning",
        "funding rate spiked to 0.3%",
    )
    assert (spiked.symbol, spiked.trade_id, spiked.details) == ("BTCUSDT", "t-7", {"rate": "0.003"})
    assert (failed.event_type, failed.severity) == ("order_failed", "error")
    assert failed.stack_trace is not None
    assert "RuntimeError: exchange timeout" in failed.stack_trace
    assert failed.created_at is not None and failed.created_at >= spiked.created_at  # type: ignore[operator]


async def test_structlog_bound_context_and_exceptions(
    db: DatabaseManager, bridge: DatabaseLogHandler
) -> None:
    log = get_logger("iftb.strategy").bind(symbol="ETHUSDT", exchange="bybit", position_id=12)
    log.warning("stop moved", trade_id="t-9", stop="2999.5", api_key="sk-live-123")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("sizing failed")
    structlog.get_logger("iftb.quiet").debug("never persisted")
    await bridge.flush_async()

    failed, moved = await stored(db)
    assert (moved.symbol, moved.exchange, moved.position_id, moved.trade_id) == (
        "ETHUSDT",
        "bybit",
        12,
        "t-9",
    )
    assert moved.details == {"stop": "2999.5", "api_key": "***"}
    assert (moved.event_type, moved.severity, moved.message) == (
        "log.iftb.strategy",
        "warning",
        "stop moved",
    )
    assert failed.severity == "error" and "ZeroDivisionError" in (failed.stack_trace or "")


async def test_secrets_and_odd_context_never_block_a_batch(
    db: DatabaseManager, bridge: DatabaseLogHandler, app_logger: logging.Logger
) -> None:
    app_logger.error("cannot reach postgresql://bot:hunter2@db:5432/iftb")
    app_logger.warning(
        "odd context",
        extra={"symbol": "X" * 200, "details": {"obj": object(), "nan": float("nan")}},
    )
    await bridge.flush_async()

    odd, url = await stored(db)
    assert "hunter2" not in url.message and "bot:***@db" in url.message
    assert odd.symbol is None and odd.details is not None
    assert odd.details["symbol"] == "X" * 200 and "invalid_context" in odd.details
    assert odd.details["nan"] == "nan" and odd.details["obj"].startswith("<object")


async def test_secrets_are_masked_in_stored_events_at_any_depth(
    db: DatabaseManager, bridge: DatabaseLogHandler, app_logger: logging.Logger
) -> None:
    get_logger("iftb.exchange").warning(
        "order sent",
        config={"db": {"password": "s1-pw"}},
        request={"headers": {"Authorization": "Bearer s2-tok", "X-API-KEY": "s3-key"}},
        secret="s4-sec",
        token="s5-tok",
    )
    try:
        raise ConnectionError("refused: postgresql://bot:s6-pw@db/iftb with api_key=s7-key")
    except ConnectionError:
        app_logger.exception(
            "exchange down, Authorization: Bearer s8-tok",
            extra={"details": {"accounts": [{"api_key": "s9-key"}], "endpoint": "/v1/order"}},
        )
    await bridge.flush_async()

    down, sent = await stored(db)
    assert sent.details == {
        "config": {"db": {"password": "***"}},
        "request": {"headers": {"Authorization": "***", "X-API-KEY": "***"}},
        "secret": "***",
        "token": "***",
    }
    assert down.details == {"accounts": [{"api_key": "***"}], "endpoint": "/v1/order"}
    assert down.message == "exchange down, Authorization: ***"
    assert "postgresql://bot:***@db/iftb" in (down.stack_trace or "")
    for secret in ("s1-pw", "s2-tok", "s3-key", "s4-sec", "s5-tok", "s6-pw", "s7-key", "s8-tok"):
        assert secret not in repr(sent) + repr(down)


@pytest.mark.parametrize(
    ("poison", "stored_as"),
    [
        ({"msg": "nul \x00 in message"}, {"message": "nul  in message"}),
        ({"msg": "lone \ud800 surrogate"}, {"message": "lone \ufffd surrogate"}),
        (
            {"msg": "odd details", "extra": {"details": {"k\ud800": ["a\x00b", "\udfff"]}}},
            {"details": {"k\ufffd": ["ab", "\ufffd"]}},
        ),
        ({"msg": "odd column", "extra": {"symbol": "BTC\x00USDT"}}, {"symbol": "BTCUSDT"}),
    ],
)
async def test_unstorable_characters_are_replaced_and_never_block_the_queue(
    db: DatabaseManager,
    bridge: DatabaseLogHandler,
    app_logger: logging.Logger,
    poison: dict,  # type: ignore[type-arg]
    stored_as: dict,  # type: ignore[type-arg]
) -> None:
    app_logger.warning("before")
    app_logger.warning(poison["msg"], extra=poison.get("extra"))
    app_logger.warning("after")
    async with asyncio.timeout(30):  # a blocked queue never drains
        await bridge.flush_async()

    after, sanitised, before = await stored(db)
    assert (before.message, after.message) == ("before", "after")
    for field, value in stored_as.items():
        assert getattr(sanitised, field) == value
    assert bridge.rejected == 0


async def refuse_messages_saying_poison(db: DatabaseManager) -> None:
    """A real refusal by the database, of one record that passes every check in Python."""
    async with db.get_session() as session:
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON system_events "
                    "WHEN NEW.message = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            await session.execute(
                text(
                    "ALTER TABLE system_events "
                    "ADD CONSTRAINT refuse_poison CHECK (message <> 'poison')"
                )
            )


async def test_a_record_the_database_refuses_is_dropped_counted_and_reported(
    db: DatabaseManager, bridge: DatabaseLogHandler, app_logger: logging.Logger
) -> None:
    await refuse_messages_saying_poison(db)
    for n in range(3):
        app_logger.warning("good %d", n)
    app_logger.error("poison")
    for n in range(3, 6):
        app_logger.warning("good %d", n)
    async with asyncio.timeout(30):  # a blocked queue never drains
        await bridge.flush_async()

    events = await stored(db)
    assert {event.message for event in events if event.message.startswith("good")} == {
        f"good {n}" for n in range(6)
    }
    assert "poison" not in {event.message for event in events}
    [report] = [event for event in events if event.event_type == "log_bridge.rejected"]
    assert report.details is not None and report.details["rejected"] == 1
    assert "refuse" in report.details["last_error"]
    assert bridge.rejected == 0  # reported, so reset


async def test_the_bridge_keeps_writing_after_a_refused_record(
    db: DatabaseManager, bridge: DatabaseLogHandler, app_logger: logging.Logger
) -> None:
    await refuse_messages_saying_poison(db)
    app_logger.error("poison")
    async with asyncio.timeout(30):
        await bridge.flush_async()
    app_logger.warning("later")
    async with asyncio.timeout(30):
        await bridge.flush_async()

    assert "later" in {event.message for event in await stored(db)}


async def test_burst_is_queued_without_waiting_and_then_fully_written(
    db: DatabaseManager, app_logger: logging.Logger
) -> None:
    bridge = DatabaseLogHandler(db, queue_size=10_000, flush_interval=0.05).install([LOGGER])
    for n in range(10_000):  # a tight loop: no await, so nothing can have been written yet
        app_logger.warning("burst %d", n)
    assert (bridge.queued, bridge.dropped, bridge.written) == (10_000, 0, 0)  # no await yet

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    probe = asyncio.create_task(ticker())
    await bridge.flush_async()
    probe.cancel()
    await bridge.aclose()

    assert bridge.written == 10_000 and bridge.dropped == 0
    messages = {event.message for event in await stored(db)}
    assert messages == {f"burst {n}" for n in range(10_000)}
    assert ticks > 10_000 // 500  # the loop kept running between the batches


async def test_records_beyond_the_queue_are_dropped_counted_and_reported(
    db: DatabaseManager, app_logger: logging.Logger
) -> None:
    bridge = DatabaseLogHandler(db, queue_size=100, batch_size=50, flush_interval=0.05)
    bridge.install([LOGGER])
    for n in range(1_000):
        app_logger.warning("flood %d", n)
    assert bridge.dropped == 900
    await bridge.aclose()

    events = await stored(db)
    [report] = [event for event in events if event.event_type == "log_bridge.dropped"]
    assert report.details == {"dropped": 900}
    assert len(events) == 101 and bridge.dropped == 0


async def test_disconnect_flushes_the_queue(database_url: str, app_logger: logging.Logger) -> None:
    manager = DatabaseManager(database_url)
    await manager.connect()
    bridge = DatabaseLogHandler(manager, flush_interval=60).install([LOGGER])
    for n in range(50):
        app_logger.warning("last words %d", n)
    await manager.disconnect()

    assert bridge not in app_logger.handlers
    async with DatabaseManager(database_url) as reopened:
        assert await count(reopened) == 50


@pytest.mark.postgres_only
async def test_database_outage_neither_raises_nor_loses_nor_recurses(
    db: DatabaseManager, postgres_server: PostgresServer, app_logger: logging.Logger
) -> None:
    bridge = DatabaseLogHandler(db, flush_interval=0.02, retry_delay=0.02).install(
        [LOGGER, "", "iftb"]
    )
    name = make_url(str(db.engine.url)).database
    admin = await asyncpg.connect(postgres_server.url(driver=""))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        for n in range(20):
            app_logger.error("during outage %d", n)  # must not raise
        async with asyncio.timeout(30):
            while bridge.failed_writes < 3:  # noqa: ASYNC110 - polls the writer's counter
                await asyncio.sleep(0.01)
        assert bridge.written == 0
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    await bridge.aclose()

    events = await stored(db)
    assert sorted(event.message for event in events) == sorted(
        f"during outage {n}" for n in range(20)
    )  # nothing lost, and nothing the failing writes logged came back through the bridge


@pytest.mark.parametrize(
    "options",
    [{"queue_size": 0}, {"batch_size": 0}, {"flush_interval": 0}, {"retry_delay": -1}],
)
async def test_nonsensical_settings_are_refused(db: DatabaseManager, options: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match="must be"):
        DatabaseLogHandler(db, **options)


async def test_a_database_refusing_every_event_leaves_the_bridge_idle_not_spinning(
    db: DatabaseManager, bridge: DatabaseLogHandler, app_logger: logging.Logger
) -> None:
    async with db.get_session() as session:  # every insert refused, as a revoked right would be
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_all BEFORE INSERT ON system_events "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            await session.execute(
                text("ALTER TABLE system_events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
            )
    app_logger.error("refused")
    async with asyncio.timeout(30):
        await bridge.flush_async()
    await asyncio.sleep(0.3)
    attempts = bridge.failed_writes
    await asyncio.sleep(0.5)  # its own refused report is not reported again, and again
    assert bridge.failed_writes == attempts
    assert (bridge.rejected, bridge.queued) == (0, 0)


async def test_a_bridge_of_a_scope_logs_into_that_scope(
    db: DatabaseManager, app_logger: logging.Logger
) -> None:
    handler = DatabaseLogHandler(db, flush_interval=0.05, scope=Scope("trend-1", "paper"))
    handler.install([LOGGER])
    try:
        app_logger.warning("paper bot restarted")
        await handler.flush_async()
    finally:
        await handler.aclose()
    async with db.scope("trend-1", "paper").session() as journal:
        assert [e.message for e in await journal.events.get_recent_events()] == [
            "paper bot restarted"
        ]
    assert await stored(db) == []  # nothing in the default scope


async def test_closing_stops_the_writer_even_as_work_arrives(db: DatabaseManager) -> None:
    """A wake-up and the cancellation of aclose() in the same loop turn: the writer stops (with
    asyncio.wait_for it swallowed the cancellation on Python 3.11, and aclose hung forever)."""
    bridge = DatabaseLogHandler(db, flush_interval=60).install([LOGGER])
    await asyncio.sleep(0.01)  # the writer is waiting for work
    bridge._wake()  # work arrives as the bridge closes
    closing = asyncio.create_task(bridge.aclose())
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "aclose() did not return: the writer never stopped"


async def test_a_record_of_megabytes_is_stored_cut_and_the_bridge_keeps_flowing(
    database_url: str, app_logger: logging.Logger
) -> None:
    """A 30 MB message (and details, and a stack trace) under a 1 s statement_timeout: it was
    taken for "database unavailable" and retried forever, and none of the next 20 records was
    stored. Each field is now cut to ``MAX_TEXT`` characters with its full length noted."""
    async with DatabaseManager(database_url, timeouts=Timeouts(statement=1.0)) as db:
        bridge = DatabaseLogHandler(db, flush_interval=0.05, retry_delay=0.05)
        bridge.install([LOGGER])
        try:
            huge = "x" * 30_000_000
            try:
                raise RuntimeError(huge)
            except RuntimeError:
                app_logger.exception(huge, extra={"details": {"payload": huge}})
            for number in range(20):
                app_logger.warning("after %d", number)
            async with asyncio.timeout(60):
                await bridge.flush_async()
        finally:
            await bridge.aclose()
        events = await stored(db)
    assert {f"after {n}" for n in range(20)} <= {event.message for event in events}
    [big] = [event for event in events if event.message.startswith("xxx")]
    assert len(big.message) == MAX_TEXT and big.message.endswith("30,000,000 characters in all]")
    assert big.stack_trace is not None and len(big.stack_trace) == MAX_TEXT
    assert big.stack_trace.rstrip().endswith("x")  # the end, where the error is, kept
    assert big.details is not None and big.details["characters"] > 30_000_000
