"""Records of the futures ledger: an order, a fill, a funding payment, and what reconciliation
finds. Each checks its fields against its columns' rules when built (``ValidatedRecord``).

They are frozen: checked once, valid for good (``dataclasses.replace`` builds a new one, checked
again), so recording a history of 150k of them does not check them all a second time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from iftb.data.storage.enums import OrderSide, OrderStatus, OrderType, Side, TimeInForce
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.records import ValidatedRecord, record_rules
from iftb.data.storage.validation import Rule, positive, required_columns


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Order(ValidatedRecord):
    """An order of the bot's, named by its client order id; ``trade_id`` is the trade it opens,
    adds to or closes (every order names one, so a replay builds the same trades)."""

    _rules: ClassVar[dict[str, Rule]] = record_rules(
        OrderModel,
        side=OrderSide,
        position_side=Side,
        order_type=OrderType,
        status=OrderStatus,
        time_in_force=TimeInForce,
    )
    _required: ClassVar[frozenset[str]] = required_columns(OrderModel)

    client_order_id: str
    trade_id: str
    symbol: str
    side: str
    position_side: str
    order_type: str
    quantity: Decimal
    exchange: str = "binance"
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    exchange_order_id: str | None = None
    status: str = OrderStatus.NEW
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    placed_at: datetime = field(default_factory=_now)
    raw: Any = None
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int | None = None

    def _check_invariants(self) -> None:
        positive("quantity", self.quantity)
        positive("price", self.price)
        positive("stop_price", self.stop_price)
        positive("filled_quantity", self.filled_quantity, allow_zero=True)
        if self.filled_quantity > self.quantity:
            raise ValidationError(
                f"filled_quantity: {self.filled_quantity} exceeds quantity {self.quantity}",
                field="filled_quantity",
            )


@dataclass(frozen=True, slots=True)
class Fill(ValidatedRecord):
    """One execution of an order (``client_order_id``), unique by its exchange fill id.

    ``fee`` is in ``fee_asset`` (the quote asset when not given), as the exchange reports it.
    PnL is counted in the quote asset, so a fee charged in another asset (BNB) needs its quote
    value, ``fee_quote``: without it the fill is refused. A fee in the quote asset is its own
    quote value: a ``fee_quote`` that says otherwise is refused, as is an empty asset.
    """

    _rules: ClassVar[dict[str, Rule]] = record_rules(FillModel, side=OrderSide)
    _required: ClassVar[frozenset[str]] = required_columns(FillModel)

    exchange_fill_id: str
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    filled_at: datetime
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    fee_quote: Decimal | None = None
    is_maker: bool | None = None
    sequence: int | None = None
    """The exchange's own place of the fill in its sequence, where it gives one: it orders
    fills of one instant (``ledger_math.fill_order``)."""
    exchange: str = "binance"
    order_id: int | None = None
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    id: int | None = None
    created_at: datetime | None = None

    def _check_invariants(self) -> None:
        positive("price", self.price)
        positive("quantity", self.quantity)
        positive("fee", self.fee, allow_zero=True)
        positive("fee_quote", self.fee_quote, allow_zero=True)
        if self.fee_asset is not None and not self.fee_asset.strip():
            raise ValidationError(
                "fee_asset: is empty; leave it out (None) for the quote asset", field="fee_asset"
            )
        in_quote = quoted_in(self.symbol, self.fee_asset)
        if self.fee and self.fee_quote is None and not in_quote:
            raise ValidationError(
                f"fee_quote: the fee is in {self.fee_asset}, not {self.symbol}'s quote asset; "
                "pass fee_quote, its value in the quote asset",
                field="fee_quote",
            )
        if self.fee_quote is not None and (in_quote or not self.fee) and self.fee_quote != self.fee:
            asset = self.fee_asset or "the quote asset"
            raise ValidationError(
                f"fee_quote: {self.fee_quote} contradicts the fee of {self.fee} {asset}: a fee "
                "in the quote asset, or no fee, is its own quote value",
                field="fee_quote",
            )

    @property
    def quote_fee(self) -> Decimal:
        """The fee in the quote asset: what the trade's PnL counts."""
        return self.fee if self.fee_quote is None else self.fee_quote


def quoted_in(symbol: str, asset: str | None) -> bool:
    """Whether ``asset`` is ``symbol``'s quote asset (``BTCUSDT``, ``BTC/USDT:USDT``); None
    means the quote asset."""
    if asset is None:
        return True
    pair = symbol.split(":")[0]
    return pair.endswith(asset) or pair.endswith(f"/{asset}")


FUNDING_TOLERANCE = timedelta(minutes=1)
"""How far from its funding boundary an exchange may stamp a payment (REST and websocket stamp
one payment up to seconds apart)."""


def funding_boundary(reported: datetime) -> datetime:
    """The funding boundary a payment stamped ``reported`` settles: the whole UTC hour within
    ``FUNDING_TOLERANCE`` of it (every exchange's funding interval, 1, 4 or 8 hours, starts on
    one). A stamp further from any whole hour is refused."""
    hour = reported.replace(minute=0, second=0, microsecond=0)
    nearest = hour + timedelta(hours=1) if reported - hour > timedelta(minutes=30) else hour
    if abs(reported - nearest) > FUNDING_TOLERANCE:
        raise ValidationError(
            f"funding_time: {reported.isoformat()} is not within "
            f"{int(FUNDING_TOLERANCE.total_seconds())} s of a whole UTC hour, where every "
            "funding interval settles",
            field="funding_time",
        )
    return nearest


@dataclass(frozen=True, slots=True)
class FundingPayment(ValidatedRecord):
    """Funding on one side of a symbol for one funding interval: received (positive) or paid.

    Its identity is the interval it settles: ``funding_time`` is made the funding boundary
    (``funding_boundary``), and the time the exchange reported, when it differs, is kept as
    ``reported_time``.
    """

    _rules: ClassVar[dict[str, Rule]] = record_rules(FundingPaymentModel, position_side=Side)
    _required: ClassVar[frozenset[str]] = required_columns(FundingPaymentModel)

    symbol: str
    position_side: str
    funding_time: datetime
    amount: Decimal
    exchange: str = "binance"
    rate: Decimal | None = None
    position_size: Decimal | None = None
    mark_price: Decimal | None = None
    trade_id: str | None = None
    reported_time: datetime | None = None
    bot: str | None = None
    mode: str | None = None
    run_id: int | None = None
    id: int | None = None
    created_at: datetime | None = None

    def _check_invariants(self) -> None:
        boundary = funding_boundary(self.funding_time)
        if boundary != self.funding_time:
            if self.reported_time is None:
                object.__setattr__(self, "reported_time", self.funding_time)
            object.__setattr__(self, "funding_time", boundary)
        if self.reported_time is not None and funding_boundary(self.reported_time) != boundary:
            raise ValidationError(
                f"reported_time: {self.reported_time.isoformat()} does not settle the funding "
                f"boundary {boundary.isoformat()}",
                field="reported_time",
            )


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    """A position as the exchange reports it, for reconciliation."""

    symbol: str
    side: str
    size: Decimal
    entry_price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.side not in (Side.LONG, Side.SHORT):
            raise ValidationError(f"side: {self.side!r} is not one of long, short", field="side")
        positive("size", self.size, allow_zero=True)
        positive("entry_price", self.entry_price)


@dataclass(frozen=True, slots=True)
class HistoryCounts:
    """What recording a history wrote: new orders, fills and funding payments (replays are
    not counted), and the trades it created or changed."""

    orders: int
    fills: int
    funding: int
    trades: int


@dataclass(frozen=True, slots=True)
class FundingTotal:
    """Funding of one symbol on one UTC day: received (positive) or paid."""

    day: date
    symbol: str
    amount: Decimal
    payments: int


@dataclass(frozen=True, slots=True)
class PositionDifference:
    """Where the exchange and the ledger disagree on one side of a symbol."""

    symbol: str
    side: str
    exchange_size: Decimal
    ledger_size: Decimal
    exchange_entry_price: Decimal | None
    ledger_entry_price: Decimal | None

    @property
    def differs(self) -> bool:
        """Sizes differ, or both entry prices are known and differ."""
        if self.exchange_size != self.ledger_size:
            return True
        prices = (self.exchange_entry_price, self.ledger_entry_price)
        return None not in prices and prices[0] != prices[1]

    @property
    def problem(self) -> str:
        if self.ledger_size == 0:
            return "open on the exchange, not in the ledger"
        if self.exchange_size == 0:
            return "open in the ledger, not on the exchange"
        if self.exchange_size != self.ledger_size:
            return "sizes differ"
        return "entry prices differ"
