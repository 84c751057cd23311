"""Domain records: what repositories take and return (never ORM rows).

Each record checks its invariants when it is built, against the rules of its table's columns
(``validation.column_rules``) plus the rules of the domain (a candle's low ≤ high, an exit after
its entry, …). Mutable records are checked again before every write, since a caller may have
changed a field since construction. An invalid record raises ``ValidationError`` naming the
field and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Self

from iftb.data.storage.enums import (
    LLMCallStatus,
    PositionStatus,
    PriceType,
    Severity,
    Side,
    TradeAction,
)
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.models import (
    DailyPerformanceModel,
    LLMAnalysisLogModel,
    OHLCVModel,
    PositionModel,
    SystemEventModel,
    TradeModel,
)
from iftb.data.storage.scopes import SCOPE_COLUMNS
from iftb.data.storage.timeframes import parse_timeframe
from iftb.data.storage.validation import Rule, column_rules, positive, required_columns


def _now() -> datetime:
    return datetime.now(UTC)


class ValidatedRecord:
    """Checks every field against its column's rule, then the record's own invariants."""

    __slots__ = ()
    _rules: ClassVar[dict[str, Rule]]
    _required: ClassVar[frozenset[str]]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Normalise and check every field; raise ``ValidationError`` on the first broken rule."""
        for name, rule in self._rules.items():
            value = getattr(self, name)
            if value is None:
                if name in self._required:
                    raise ValidationError(f"{name}: is required", field=name)
                continue
            normalised = rule(value)
            if normalised is not value:
                object.__setattr__(self, name, normalised)
        self._check_invariants()

    def _check_invariants(self) -> None:
        """Cross-field rules; records override this."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return _field_names(cls)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        """Build from a stored row without re-validating: the database holds only valid rows,
        and reads are the hot path."""
        record = object.__new__(cls)
        for name in _field_names(cls):
            object.__setattr__(record, name, row[name])
        return record


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def record_rules(model: Any, *, unchecked: tuple[str, ...] = (), **choices: Any) -> dict[str, Rule]:
    """The column rules, but for ``created_at`` (set by the database) and ``unchecked`` columns
    the record does not carry; ``id`` keeps its rule, as a record handed back to ``update``
    must still hold an id that fits BIGINT. A row's scope is checked by ``Scope``."""
    rules = column_rules(model, choices)
    for name in ("created_at", *SCOPE_COLUMNS, *unchecked):
        rules.pop(name, None)
    return rules


@dataclass(frozen=True, slots=True)
class Gap:
    """A run of missing candles: open time of the first and last missing one, and their count."""

    start: datetime
    end: datetime
    missing: int


@dataclass(frozen=True, slots=True)
class SeriesCoverage:
    """What is stored of one candle series: first and last candle, how many, how many missing."""

    symbol: str
    exchange: str
    timeframe: str
    first: datetime
    last: datetime
    count: int
    expected: int
    price_type: str = PriceType.TRADE

    @property
    def missing(self) -> int:
        return self.expected - self.count


@dataclass(frozen=True, slots=True)
class SeriesInventory(SeriesCoverage):
    """A series of the candle catalog: its coverage and how many runs of candles it misses."""

    gaps: int = 0


@dataclass(frozen=True, slots=True)
class OHLCVBar(ValidatedRecord):
    """One candle. ``timestamp`` is its open time, on the timeframe's boundary, in UTC."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(
        OHLCVModel, unchecked=("id",), price_type=PriceType
    )
    _required: ClassVar[frozenset[str]] = required_columns(OHLCVModel)

    symbol: str
    exchange: str
    timeframe: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal | None = None
    trades_count: int | None = None
    price_type: str = PriceType.TRADE

    def _check_invariants(self) -> None:
        timeframe = parse_timeframe(self.timeframe)
        if not timeframe.is_aligned(self.timestamp):
            raise ValidationError(
                f"timestamp: {self.timestamp.isoformat()} is not on a {timeframe} candle boundary",
                field="timestamp",
            )
        if self.price_type != PriceType.PREMIUM_INDEX:  # a premium may be zero or negative
            for name in ("open", "high", "low", "close"):
                positive(name, getattr(self, name))
        positive("volume", self.volume, allow_zero=True)
        positive("quote_volume", self.quote_volume, allow_zero=True)
        if self.trades_count is not None and self.trades_count < 0:
            raise ValidationError("trades_count: must be ≥ 0", field="trades_count")
        if self.low > min(self.open, self.close):
            raise ValidationError(
                f"low: {self.low} must be ≤ open ({self.open}) and close ({self.close})",
                field="low",
            )
        if self.high < max(self.open, self.close):
            raise ValidationError(
                f"high: {self.high} must be ≥ open ({self.open}) and close ({self.close})",
                field="high",
            )


@dataclass(frozen=True, slots=True)
class ResampledBar:
    """A candle built from smaller ones, with how many of its source candles were stored."""

    bar: OHLCVBar
    source_count: int
    expected_count: int

    @property
    def complete(self) -> bool:
        return self.source_count == self.expected_count


@dataclass(slots=True)
class Trade(ValidatedRecord):
    """A trade from entry to exit. ``id`` is the database id, set once stored."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(TradeModel, side=Side, action=TradeAction)
    _required: ClassVar[frozenset[str]] = required_columns(TradeModel)

    trade_id: str
    symbol: str
    exchange: str
    side: str
    action: str
    entry_price: Decimal
    quantity: Decimal
    exit_price: Decimal | None = None
    leverage: Decimal = Decimal(1)
    realized_pnl: Decimal | None = None
    realized_pnl_pct: Decimal | None = None
    fee: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)
    """Funding received (positive) or paid (negative) while the trade was open."""
    signal_score: Decimal | None = None
    technical_score: Decimal | None = None
    llm_score: Decimal | None = None
    xgb_confidence: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    position_size_pct: Decimal | None = None
    decision_reasons: Any = None
    llm_analysis: Any = None
    entry_time: datetime = field(default_factory=_now)
    exit_time: datetime | None = None
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    """The row's scope: set by the repository that stores it (its ``Scope``)."""
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int | None = None
    """The stored row's version (set by the database); an update based on an older version is
    refused with ConflictError."""

    def _check_invariants(self) -> None:
        positive("entry_price", self.entry_price)
        positive("exit_price", self.exit_price)
        positive("quantity", self.quantity)
        positive("leverage", self.leverage)
        positive("fee", self.fee, allow_zero=True)
        positive("stop_loss", self.stop_loss)
        positive("take_profit", self.take_profit)
        if self.exit_time is not None and self.exit_time < self.entry_time:
            raise ValidationError(
                f"exit_time: {self.exit_time.isoformat()} is before entry_time "
                f"{self.entry_time.isoformat()}",
                field="exit_time",
            )

    @property
    def is_closed(self) -> bool:
        return self.action != TradeAction.OPEN


@dataclass(slots=True)
class Position(ValidatedRecord):
    """A position on one side of a symbol. ``id`` is the database id, set once stored."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(
        PositionModel, side=Side, status=PositionStatus
    )
    _required: ClassVar[frozenset[str]] = required_columns(PositionModel)

    symbol: str
    exchange: str
    side: str
    entry_price: Decimal
    quantity: Decimal
    margin: Decimal
    leverage: Decimal = Decimal(1)
    current_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    unrealized_pnl_pct: Decimal | None = None
    liquidation_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_stop: Decimal | None = None
    status: str = PositionStatus.OPEN
    trade_id: str | None = None
    entry_time: datetime = field(default_factory=_now)
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    """The row's scope: set by the repository that stores it (its ``Scope``)."""
    id: int | None = None
    created_at: datetime | None = None
    last_updated: datetime | None = None
    version: int | None = None
    """The stored row's version; ``update_position`` writes only over this version."""

    def _check_invariants(self) -> None:
        positive("entry_price", self.entry_price)
        positive("quantity", self.quantity)
        positive("margin", self.margin, allow_zero=True)
        positive("leverage", self.leverage)
        for name in ("current_price", "liquidation_price", "stop_loss", "take_profit"):
            positive(name, getattr(self, name))

    @property
    def is_open(self) -> bool:
        return self.status == PositionStatus.OPEN


@dataclass(slots=True)
class SystemEvent(ValidatedRecord):
    """Something an operator may need to know: a warning, an error, a restart."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(SystemEventModel, severity=Severity)
    _required: ClassVar[frozenset[str]] = required_columns(SystemEventModel)

    event_type: str
    severity: str
    message: str
    details: Any = None
    symbol: str | None = None
    exchange: str | None = None
    trade_id: str | None = None
    position_id: int | None = None
    stack_trace: str | None = None
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    """The row's scope: set by the repository that stores it (its ``Scope``)."""
    id: int | None = None
    created_at: datetime | None = None


@dataclass(slots=True)
class LLMAnalysisLog(ValidatedRecord):
    """One LLM call: what was asked, what came back, what it cost and how long it took."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(LLMAnalysisLogModel, status=LLMCallStatus)
    _required: ClassVar[frozenset[str]] = required_columns(LLMAnalysisLogModel)

    analysis_type: str
    symbol: str | None = None
    exchange: str | None = None
    prompt_template: str | None = None
    prompt_tokens: int | None = None
    prompt_text: str | None = None
    response_text: str | None = None
    response_tokens: int | None = None
    response_json: Any = None
    total_tokens: int | None = None
    estimated_cost: Decimal | None = None
    model_name: str | None = None
    temperature: Decimal | None = None
    status: str = LLMCallStatus.SUCCESS
    error_message: str | None = None
    execution_time_ms: int | None = None
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    """The row's scope: set by the repository that stores it (its ``Scope``)."""
    id: int | None = None
    created_at: datetime | None = None

    def _check_invariants(self) -> None:
        for name in ("prompt_tokens", "response_tokens", "total_tokens", "execution_time_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValidationError(f"{name}: must be ≥ 0 (got {value})", field=name)
        positive("estimated_cost", self.estimated_cost, allow_zero=True)
        positive("temperature", self.temperature, allow_zero=True)
        if self.total_tokens is None and None not in (self.prompt_tokens, self.response_tokens):
            self.total_tokens = self.prompt_tokens + self.response_tokens  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class LLMUsage:
    """LLM calls of one group (a model or an analysis type) over a window."""

    group: str | None
    calls: int
    successes: int
    errors: int
    timeouts: int
    prompt_tokens: int
    response_tokens: int
    total_tokens: int
    estimated_cost: Decimal
    avg_latency_ms: Decimal | None
    p95_latency_ms: int | None


@dataclass(slots=True)
class DailyPerformance(ValidatedRecord):
    """One day's trading results on one exchange (the daily rollup)."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(DailyPerformanceModel)
    _required: ClassVar[frozenset[str]] = required_columns(DailyPerformanceModel)

    date: date
    exchange: str
    total_trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    win_rate: Decimal | None = None
    gross_profit: Decimal = Decimal(0)
    gross_loss: Decimal = Decimal(0)
    net_pnl: Decimal = Decimal(0)
    net_pnl_pct: Decimal | None = None
    total_fees: Decimal = Decimal(0)
    total_funding: Decimal = Decimal(0)
    avg_position_size: Decimal | None = None
    max_position_size: Decimal | None = None
    total_volume: Decimal | None = None
    max_drawdown: Decimal | None = None
    max_drawdown_amount: Decimal | None = None
    sharpe_ratio: Decimal | None = None
    profit_factor: Decimal | None = None
    starting_balance: Decimal | None = None
    ending_balance: Decimal | None = None
    peak_balance: Decimal | None = None
    avg_trade_duration_minutes: int | None = None
    longest_winning_streak: int | None = None
    longest_losing_streak: int | None = None
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    """The row's scope: set by the repository that stores it (its ``Scope``)."""
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def _check_invariants(self) -> None:
        for name in ("total_trades", "winning_trades", "losing_trades"):
            if getattr(self, name) < 0:
                raise ValidationError(f"{name}: must be ≥ 0", field=name)
        if self.winning_trades + self.losing_trades > self.total_trades:
            raise ValidationError(
                "winning_trades: wins and losses exceed total_trades", field="winning_trades"
            )
