"""Structured logging with structlog, routed through the standard ``logging`` module.

Routing through ``logging`` means one handler sees records from structlog and from libraries
(SQLAlchemy, asyncpg) alike. Every record passes through ``iftb.utils.redaction`` twice — its
context before rendering (secret-named keys at any depth, credentials in strings, the exception
text) and the rendered line after — so no log line, in any format, carries a credential.
Tracebacks are plain text without frame locals: a local may be a connection's password.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from iftb.utils.redaction import MASK, is_secret_key, redact, redact_data

__all__ = ["configure_logging", "get_logger", "redact"]

# Left as they are: structlog's and logging's own machinery, not content.
_UNTOUCHED_KEYS = frozenset({"exc_info", "stack_info", "_record", "_from_structlog"})
_configured = False


def _redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key not in _UNTOUCHED_KEYS:
            event[key] = MASK if is_secret_key(key) else redact_data(value)
    return event


_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    _redact_event,
]


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Configure structlog and the ``iftb`` logger tree (level and format default to settings)."""
    global _configured
    if level is None or fmt is None:
        from iftb.config import get_log_settings

        settings = get_log_settings()
        level, fmt = level or settings.level, fmt or settings.format
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # plain text, no locals, then redacted
            _redact_event,
            _redacted(renderer),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("iftb-console")
    root = logging.getLogger("iftb")
    for existing in [h for h in root.handlers if h.get_name() == "iftb-console"]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    _configured = True


def _redacted(renderer: Any) -> Any:
    """The renderer, its output redacted too: an object's repr may show what its keys hid."""

    def render(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        return redact(renderer(logger, method, event))

    return render


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; configures logging from the settings on first use."""
    if not _configured:
        configure_logging()
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
