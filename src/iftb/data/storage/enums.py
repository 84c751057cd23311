"""The closed vocabularies of the schema. Models derive their CHECK constraints from these."""

from enum import StrEnum


class PriceType(StrEnum):
    """What a candle's prices are: exchange trades (the default), the mark price (liquidations
    and unrealized PnL use it), the index price, or the premium index (which may be negative)."""

    TRADE = "trade"
    MARK = "mark"
    INDEX = "index"
    PREMIUM_INDEX = "premium_index"


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


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    TRAILING_STOP_MARKET = "trailing_stop_market"
    LIQUIDATION = "liquidation"
    """The exchange closing a liquidated position: its fills make the trade ``liquidated``."""


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    GTX = "gtx"
    """Post only."""


class OrderStatus(StrEnum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


FINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
"""An order in one of these goes nowhere else; a new order goes anywhere; a partially filled
one to any status but new and rejected."""
