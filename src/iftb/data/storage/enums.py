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


class Mode(StrEnum):
    """How a bot trades: real money, simulated fills on live data, or a replay of history."""

    LIVE = "live"
    PAPER = "paper"
    BACKTEST = "backtest"


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class LockSide(StrEnum):
    """The side a pair lock blocks: one of them, or both (``*``, as freqtrade writes it)."""

    LONG = "long"
    SHORT = "short"
    BOTH = "*"


class StateType(StrEnum):
    """The types a bot's state value is read back as."""

    STR = "str"
    INT = "int"
    DECIMAL = "decimal"
    DATETIME = "datetime"
    JSON = "json"
