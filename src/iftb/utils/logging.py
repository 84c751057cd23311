"""Structured logging with structlog, routed through the standard ``logging`` module.

Routing through ``logging`` means one handler sees records from structlog and from libraries
(SQLAlchemy, asyncpg) alike. A redaction step masks passwords in URLs and secret-named keys, so
no log line, at any level, carries a credential.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = re.compile(r"pass(word)?|secret|token|api_?key|credential", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+):[^@\s]+@", re.IGNORECASE)
_configured = False


def redact(text: str) -> str:
    """Mask the password of any URL in ``text``."""
    return _URL_PASSWORD.sub(r"\g<scheme>:***@", text)


def _redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if SECRET_KEYS.search(key):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact(value)
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
        from iftb.config import get_settings

        settings = get_settings().log
        level, fmt = level or settings.level, fmt or settings.format
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
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
            structlog.processors.format_exc_info if fmt == "json" else _identity,
            renderer,
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


def _identity(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    return event


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; configures logging from the settings on first use."""
    if not _configured:
        configure_logging()
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
