"""The repositories, grouped by the question they answer: ``market`` (candles and funding
rates, shared by every scope), ``journal`` (a scope's trades, positions and results) and
``audit`` (LLM calls, system events). Each takes the caller's AsyncSession; ``base`` holds what
they share."""

from iftb.data.storage.repositories.audit.llm_analysis_log import LLMAnalysisLogRepository
from iftb.data.storage.repositories.audit.system_events import SystemEventRepository
from iftb.data.storage.repositories.journal.backtest_runs import BacktestRunRepository
from iftb.data.storage.repositories.journal.bot_state import BotStateRepository
from iftb.data.storage.repositories.journal.daily_performance import DailyPerformanceRepository
from iftb.data.storage.repositories.journal.ledger import LedgerRepository
from iftb.data.storage.repositories.journal.pair_locks import PairLockRepository
from iftb.data.storage.repositories.journal.positions import PositionRepository
from iftb.data.storage.repositories.journal.scopes import ScopeRepository
from iftb.data.storage.repositories.journal.trades import TradeRepository
from iftb.data.storage.repositories.market.candle_catalog import (
    CandleCatalogRepository,
    CatalogDifference,
)
from iftb.data.storage.repositories.market.funding_rates import FundingRateRepository
from iftb.data.storage.repositories.market.ohlcv import OHLCVRepository

__all__ = [
    "BacktestRunRepository",
    "BotStateRepository",
    "CandleCatalogRepository",
    "CatalogDifference",
    "DailyPerformanceRepository",
    "FundingRateRepository",
    "LLMAnalysisLogRepository",
    "LedgerRepository",
    "OHLCVRepository",
    "PairLockRepository",
    "PositionRepository",
    "ScopeRepository",
    "SystemEventRepository",
    "TradeRepository",
]
