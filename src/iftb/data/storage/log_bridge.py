"""The logging bridge: warnings and errors from ``logging`` and structlog become system events.

A log call must never wait for the database, and must never log its way into a loop when the
database is what is failing. So ``emit`` only turns the record into a plain event and puts it on a
bounded queue (dropping and counting it when the queue is full); a background task on the event
loop writes the queue in batches through ``SystemEventRepository.log_events``. Records logged
while that task writes (by SQLAlchemy, the driver, or the manager's own warnings) are ignored.

One record the database will not take must not block the queue for good: its text is made
storable on the way in (NULs stripped, lone surrogates replaced, details made JSON, and each of
message, details and stack trace cut to ``MAX_TEXT`` characters with a note of how long it was:
a record of megabytes cannot outlast ``statement_timeout`` and be taken for an outage), and a
batch the database refuses is written again record by record, the refused ones dropped and
counted.
Only a database that takes no writes for now (unreachable, timed out, its disk full) keeps a
batch whole for a later retry.

    bridge = DatabaseLogHandler(manager)   # WARNING and above by default
    bridge.install()                       # on the root and the ``iftb`` loggers; starts the writer
    ...
    await manager.disconnect()             # flushes what is queued, then closes the pool
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import queue
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from iftb.data.storage.errors import (
    DatabaseConnectionError,
    DiskFullError,
    NotConnectedError,
    QueryTimeoutError,
    ReadOnlyError,
    ValidationError,
)
from iftb.data.storage.models import SystemEventModel
from iftb.data.storage.records import SystemEvent
from iftb.data.storage.repositories.audit.system_events import SystemEventRepository
from iftb.data.storage.scopes import DEFAULT_SCOPE, Scope

if TYPE_CHECKING:
    from iftb.data.storage.manager import DatabaseManager

# Bound-context keys that have a column of their own; the rest goes to ``details``.
_COLUMN_KEYS = ("symbol", "exchange", "trade_id", "position_id")
# Keys structlog and logging add themselves; they are the record, not its context.
_RECORD_KEYS = frozenset({"event", "level", "logger", "timestamp", "exc_info", "stack_info"})
_EVENT_TYPE_LENGTH: int = SystemEventModel.__table__.c.event_type.type.length  # type: ignore[attr-defined]
_writing = contextvars.ContextVar("iftb_log_bridge_writing", default=False)


class _NoConnectionError(Exception):
    """Whatever stopped the writer getting a connection (a refusal to connect has many
    SQLSTATEs): the database is unavailable, the records are not at fault."""


# Errors that say the database cannot take any write for now, not that a record is wrong: the
# batch waits for it (a timeout or a full disk passes; dropping the records would not help).
_UNAVAILABLE = (
    DatabaseConnectionError,
    NotConnectedError,
    QueryTimeoutError,
    DiskFullError,
    ReadOnlyError,  # a failover to a standby, a file remounted read-only
    _NoConnectionError,
)
_OWN_REPORTS = "log_bridge."
# What no text column can hold: NUL (PostgreSQL) and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_TEXT = 16_384
"""Characters kept of a record's message, stack trace and details (as JSON) each."""


class DatabaseLogHandler(logging.Handler):
    """Persist log records of ``level`` and above as system events, in the background.

    Args:
        manager: Where the events go. Its ``disconnect()`` flushes this handler first.
        level: The lowest level persisted (default WARNING).
        queue_size: Records held while the writer catches up; beyond, dropped and counted.
        batch_size: Events per write.
        flush_interval: Seconds the writer waits for a batch to fill before writing what it has.
        retry_delay: Seconds between attempts while the database is unreachable (doubles to 30 s).
        shutdown_timeout: Seconds ``aclose()`` waits for the queue to drain (the database may be
            down at shutdown; a bot must still be able to stop).
        scope: The scope the events belong to (the default scope when not given).
    """

    def __init__(
        self,
        manager: DatabaseManager,
        level: int | str = logging.WARNING,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        retry_delay: float = 0.5,
        shutdown_timeout: float = 10.0,
        scope: Scope = DEFAULT_SCOPE,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError(
                f"queue_size and batch_size must be ≥ 1 (got {queue_size}, {batch_size})"
            )
        if flush_interval <= 0 or retry_delay < 0 or shutdown_timeout < 0:
            raise ValueError("flush_interval must be > 0, retry_delay and shutdown_timeout ≥ 0")
        super().__init__(level)
        self.set_name("iftb-database")
        self._manager = manager
        self._scope = scope
        self._queue: queue.Queue[SystemEvent] = queue.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_delay = retry_delay
        self._shutdown_timeout = shutdown_timeout
        self._dropped = 0
        self._rejected = 0
        self._last_rejection = ""
        self._dropped_lock = threading.Lock()
        self._loggers: list[logging.Logger] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pending: list[SystemEvent] = []
        self.written = 0
        self.failed_writes = 0

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full (not yet reported)."""
        return self._dropped

    @property
    def rejected(self) -> int:
        """Records dropped because they could not be stored (not yet reported)."""
        return self._rejected

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return self._queue.qsize() + len(self._pending)

    def install(self, logger_names: Iterable[str] = ("", "iftb")) -> DatabaseLogHandler:
        """Attach to the named loggers (root and ``iftb`` by default: ``iftb`` does not
        propagate) and start the writer on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._writer = self._loop.create_task(self._write_forever(), name="iftb-log-bridge")
        for name in logger_names:
            logger = logging.getLogger(name)
            if self not in logger.handlers:
                logger.addHandler(self)
                self._loggers.append(logger)
        self._manager.on_disconnect(self.aclose)
        return self

    async def flush_async(self) -> None:
        """Wait until everything queued so far is written (bound it with ``asyncio.timeout``)."""
        while self.queued and self._writer is not None and not self._writer.done():
            self._wake()
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        """Detach from the loggers, write what is queued (waiting at most ``shutdown_timeout``),
        and stop the writer. Idempotent."""
        for logger in self._loggers:
            logger.removeHandler(self)
        self._loggers.clear()
        if self._writer is None:
            return
        try:
            async with asyncio.timeout(self._shutdown_timeout):
                await self.flush_async()
        except TimeoutError:
            _report(f"log bridge: {self.queued} log records not written before shutdown")
        self._writer.cancel()
        await asyncio.wait({self._writer})  # the writer's end; a cancellation of ours propagates
        self._writer = None
        self.close()

    # --- the logging side: cheap and never blocking ----------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if _writing.get():
            return
        try:
            event = _to_event(record)
        except Exception as exc:  # not even the fallback holds it: counted, never re-raised
            self._reject(exc)
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._dropped_lock:
                self._dropped += 1
            return
        if self._queue.qsize() >= self._batch_size:
            self._wake()

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or wakeup.is_set() or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            wakeup.set()
        else:
            loop.call_soon_threadsafe(wakeup.set)

    # --- the writing side ------------------------------------------------------------------

    async def _write_forever(self) -> None:
        _writing.set(True)
        assert self._wakeup is not None
        delay = self._retry_delay
        while True:
            if not self._pending:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns when the wake-up
                # and a cancellation arrive together, and the writer never stopped
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._wakeup.wait()
                self._wakeup.clear()
            self._take_batch()
            if not self._pending:
                continue
            try:
                await self._write_pending()
            except _UNAVAILABLE as exc:
                self.failed_writes += 1
                _report(f"log bridge: write failed ({type(exc).__name__}); retrying in {delay:g}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = self._retry_delay
            self._report_drops()
            await asyncio.sleep(0)  # let the loop run between batches

    def _take_batch(self) -> None:
        while len(self._pending) < self._batch_size:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            self._pending.append(event)

    async def _write_pending(self) -> None:
        """Write the pending batch; if the database refuses it (while taking writes), write its
        records one by one so that only the refused ones are lost. Raises what says the
        database is unavailable, with the records not yet written still pending."""
        try:
            await self._write(self._pending)
        except _UNAVAILABLE:
            raise
        except Exception:
            self.failed_writes += 1
            while self._pending:
                try:
                    await self._write(self._pending[:1])
                except _UNAVAILABLE:
                    raise
                except Exception as exc:
                    if self._pending[0].event_type.startswith(_OWN_REPORTS):
                        # counting it would queue another report, refused in turn: a busy loop
                        _report(f"log bridge: its own report was refused ({type(exc).__name__})")
                    else:
                        self._reject(exc)
                else:
                    self.written += 1
                del self._pending[0]
            return
        self.written += len(self._pending)
        self._pending = []

    async def _write(self, events: list[SystemEvent]) -> None:
        async with self._manager.get_session() as session:
            try:
                await session.connection()
            except Exception as exc:
                raise _NoConnectionError(type(exc).__name__) from exc
            await SystemEventRepository(session, self._scope).log_events(events)

    def _reject(self, exc: Exception) -> None:
        with self._dropped_lock:
            self._rejected += 1
            self._last_rejection = f"{type(exc).__name__}: {exc}"

    def _report_drops(self) -> None:
        """Once the queue has drained, say how many records it could not hold and how many the
        database refused (each once, to the console and as an event)."""
        if self._queue.qsize() or not (self._dropped or self._rejected):
            return
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, 0
            rejected, self._rejected = self._rejected, 0
            last_rejection = self._last_rejection
        if dropped:
            self._report_event(
                "log_bridge.dropped",
                f"log bridge dropped {dropped} log records: its queue was full",
                {"dropped": dropped},
            )
        if rejected:
            self._report_event(
                "log_bridge.rejected",
                f"log bridge dropped {rejected} log records the database refused",
                {"rejected": rejected, "last_error": last_rejection},
            )

    def _report_event(self, event_type: str, message: str, details: dict[str, Any]) -> None:
        _report(message)
        self._pending.append(
            SystemEvent(
                event_type=event_type,
                severity="warning",
                message=message,
                details=_storable(details),
                created_at=datetime.now(UTC),
            )
        )


def _to_event(record: logging.LogRecord) -> SystemEvent:
    """A log record (plain or structlog's event dict) as a system event, made storable.

    Secrets are masked where every event is stored (``SystemEventRepository``)."""
    context: dict[str, Any] = {}
    exc_info = record.exc_info
    if isinstance(record.msg, Mapping):  # structlog through ProcessorFormatter.wrap_for_formatter
        context = {k: v for k, v in record.msg.items() if k not in _RECORD_KEYS}
        message = str(record.msg.get("event", ""))
        if exc_info is None and record.msg.get("exc_info"):
            exc_info = _exc_info(record.msg["exc_info"])
    else:
        message = record.getMessage()
        extra = vars(record)
        context = dict(extra.get("details") or {})
        context |= {k: extra[k] for k in (*_COLUMN_KEYS, "event_type") if k in extra}
    columns = {key: context.pop(key) for key in _COLUMN_KEYS if key in context}
    event_type = str(context.pop("event_type", None) or f"log.{record.name or 'root'}")
    return _event_or_fallback(
        {
            "event_type": _storable(event_type[:_EVENT_TYPE_LENGTH]),
            "severity": _severity(record.levelno),
            "message": _storable(_cut(message)),
            "details": _bounded(_json_safe(context)) or None,
            "symbol": _text_or_none(columns.get("symbol")),
            "exchange": _text_or_none(columns.get("exchange")),
            "trade_id": _text_or_none(columns.get("trade_id")),
            "position_id": _int_or_none(columns.get("position_id")),
            "stack_trace": _stack_trace(exc_info),
            "created_at": datetime.fromtimestamp(record.created, UTC),
        }
    )


def _event_or_fallback(fields: dict[str, Any]) -> SystemEvent:
    """The event, or — when a context value breaks a column's rule — the same event with that
    context kept in ``details`` only, so one odd log call cannot block a batch."""
    try:
        return SystemEvent(**fields)
    except ValidationError as exc:
        details = {**(fields.pop("details") or {}), "invalid_context": str(exc)}
        for key in _COLUMN_KEYS:
            value = fields.pop(key)
            if value is not None:
                details[key] = value
        return SystemEvent(**fields, details=_json_safe(details))


def _stack_trace(exc_info: Any) -> str | None:
    if not exc_info:
        return None
    trace: str = _storable(_cut("".join(traceback.format_exception(*exc_info)), keep_end=True))
    return trace


def _cut(text: str, *, keep_end: bool = False) -> str:
    """``text`` within ``MAX_TEXT`` characters, saying how long it was (a stack trace keeps its
    end, where the error is)."""
    if len(text) <= MAX_TEXT:
        return text
    note = f" [... cut: {len(text):,} characters in all]"
    kept = MAX_TEXT - len(note)
    return note + text[-kept:] if keep_end else text[:kept] + note


def _bounded(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` whole while their JSON is within ``MAX_TEXT`` characters; else a cut of that
    JSON text, and its length."""
    text = json.dumps(details)
    if len(text) <= MAX_TEXT:
        return details
    return {"cut_details": _cut(text), "characters": len(text)}


def _exc_info(value: Any) -> Any:
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple):
        return value
    info = sys.exc_info()
    return info if info[0] is not None else None


def _severity(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


def _json_safe(context: dict[str, Any]) -> dict[str, Any]:
    """Context as storable JSON: anything JSON cannot hold as its repr."""
    try:
        text = json.dumps(context, default=repr, allow_nan=False)
    except ValueError:  # NaN or Infinity, which JSON (and PostgreSQL) cannot hold
        text = json.dumps({key: repr(value) for key, value in context.items()})
    return dict(_storable(json.loads(text)))


def _storable(value: Any) -> Any:
    """``value`` with every string (and key) freed of what no text column can hold: NULs
    stripped, lone surrogates replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(_replacement, value)
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _replacement(match: re.Match[str]) -> str:
    return "" if match[0] == "\x00" else "\ufffd"


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _storable(str(value))


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _report(message: str) -> None:
    """The bridge's own news goes to the console loggers, never back into the bridge."""
    token = _writing.set(True)
    try:
        logging.getLogger("iftb.log_bridge").warning(message)
    finally:
        _writing.reset(token)
