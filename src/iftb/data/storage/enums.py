"""The closed vocabularies of the schema. Models derive their CHECK constraints from these."""

from enum import StrEnum


class Side(StrEnum):
    LONG = "long"
    SHORT = "short"


class TradeAction(StrEnum):
    OPEN = "open"
    CLOSE = "close"
    LIQUIDATED = "liquidated"


class PositionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    LIQUIDATED = "liquidated"


class LLMCallStatus(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"


class Severity(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"
