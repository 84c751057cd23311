"""iftb storage: async persistence of candles, trades, positions, the LLM audit log, system
events and daily performance, on SQLite (embedded default) and PostgreSQL.

This package ``__init__`` is the public face; import from here, not from the modules.
"""

from iftb.data.storage.engine import Timeouts
from iftb.data.storage.enums import LLMCallStatus, PositionStatus, Severity, Side, TradeAction
from iftb.data.storage.errors import (
    ClusterError,
    ConflictError,
    DatabaseConnectionError,
    DiskFullError,
    DuplicateError,
    NotConnectedError,
    NotFoundError,
    QueryTimeoutError,
    ReadOnlyError,
    SchemaOutOfDateError,
    SchemaTooNewError,
    StorageError,
    ValidationError,
)
from iftb.data.storage.log_bridge import DatabaseLogHandler
from iftb.data.storage.manager import DatabaseManager
from iftb.data.storage.models import (
    Base,
    DailyPerformanceModel,
    LLMAnalysisLogModel,
    OHLCVModel,
    PositionModel,
    SystemEventModel,
    TradeModel,
)
from iftb.data.storage.records import (
    DailyPerformance,
    Gap,
    LLMAnalysisLog,
    LLMUsage,
    OHLCVBar,
    Position,
    ResampledBar,
    SeriesCoverage,
    SystemEvent,
    Trade,
    TradeStatistics,
)
from iftb.data.storage.repositories import (
    DailyPerformanceRepository,
    LLMAnalysisLogRepository,
    OHLCVRepository,
    PositionRepository,
    SystemEventRepository,
    TradeRepository,
)
from iftb.data.storage.retry import RetryPolicy
from iftb.data.storage.timeframes import TIMEFRAMES, Timeframe, parse_timeframe

__all__ = [
    "TIMEFRAMES",
    "Base",
    "ClusterError",
    "ConflictError",
    "DailyPerformance",
    "DailyPerformanceModel",
    "DailyPerformanceRepository",
    "DatabaseConnectionError",
    "DatabaseLogHandler",
    "DatabaseManager",
    "DiskFullError",
    "DuplicateError",
    "Gap",
    "LLMAnalysisLog",
    "LLMAnalysisLogModel",
    "LLMAnalysisLogRepository",
    "LLMCallStatus",
    "LLMUsage",
    "NotConnectedError",
    "NotFoundError",
    "OHLCVBar",
    "OHLCVModel",
    "OHLCVRepository",
    "Position",
    "PositionModel",
    "PositionRepository",
    "PositionStatus",
    "QueryTimeoutError",
    "ReadOnlyError",
    "ResampledBar",
    "RetryPolicy",
    "SchemaOutOfDateError",
    "SchemaTooNewError",
    "SeriesCoverage",
    "Severity",
    "Side",
    "StorageError",
    "SystemEvent",
    "SystemEventModel",
    "SystemEventRepository",
    "Timeframe",
    "Timeouts",
    "Trade",
    "TradeAction",
    "TradeModel",
    "TradeRepository",
    "TradeStatistics",
    "ValidationError",
    "parse_timeframe",
]
