"""One repository per table; each takes the caller's AsyncSession."""

from iftb.data.storage.repositories.daily_performance import DailyPerformanceRepository
from iftb.data.storage.repositories.llm_analysis_log import LLMAnalysisLogRepository
from iftb.data.storage.repositories.ohlcv import OHLCVRepository
from iftb.data.storage.repositories.positions import PositionRepository
from iftb.data.storage.repositories.system_events import SystemEventRepository
from iftb.data.storage.repositories.trades import TradeRepository

__all__ = [
    "DailyPerformanceRepository",
    "LLMAnalysisLogRepository",
    "OHLCVRepository",
    "PositionRepository",
    "SystemEventRepository",
    "TradeRepository",
]
