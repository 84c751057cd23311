"""TradeRepository: the trade journal, from entry to exit, and its statistics.

PnL convention (docs/trading_journal.md): long ``(exit − entry) × quantity − fees + funding``,
short ``(entry − exit) × quantity − fees + funding``, where fees are the trade's total fees (entry
and exit) and funding what it received (positive) or paid while open.
``realized_pnl_pct`` is relative to the margin, ``entry × quantity / leverage``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from sqlalchemy import func, select

from iftb.data.storage.enums import Side, TradeAction
from iftb.data.storage.errors import ConflictError, NotFoundError, ValidationError
from iftb.data.storage.journal_records import TradeStatistics
from iftb.data.storage.ledger_math import MONEY
from iftb.data.storage.models import Percent, TradeModel
from iftb.data.storage.records import Trade
from iftb.data.storage.repositories.base import (
    GENERATED_COLUMNS,
    all_records,
    checked_limit,
    one_or_none,
)
from iftb.data.storage.repositories.journal.scoped import ScopedRepository
from iftb.data.storage.repositories.journal.trade_statistics import trade_statistics
from iftb.data.storage.scopes import SCOPE_COLUMNS
from iftb.data.storage.validation import (
    BIGINT_MAX,
    aware_utc,
    checked_id,
    days_ago,
    integer_rule,
    to_decimal,
)
from iftb.utils import get_logger

_UPDATABLE = frozenset(TradeModel.__table__.columns.keys()) - GENERATED_COLUMNS - set(SCOPE_COLUMNS)
_CLOSING = ("action", "exit_price", "exit_time", "fee", "realized_pnl", "realized_pnl_pct")
_IS_OPEN = TradeModel.action == TradeAction.OPEN.value
_PERCENT = Decimal("1e-4")
_offset = integer_rule("offset", 0, BIGINT_MAX)
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TradePage:
    """One page of a listing of trades, and how many trades the whole listing holds."""

    trades: list[Trade]
    total: int


class TradeRepository(ScopedRepository):
    """A scope's trades, one row each, updated from open to close."""

    async def insert(self, trade: Trade) -> int:
        """Store a new trade; returns its database id. A ``trade_id`` already used in this scope
        is a DuplicateError."""
        return await self._insert_record(trade, TradeModel)

    async def update(
        self, trade_id: int, *, expected_version: int | None = None, **fields: Any
    ) -> Trade:
        """Change columns of the trade with database id ``trade_id``; returns the stored trade.

        Only real, caller-owned columns may change, and the result is validated like an insert.
        The write is conditional on the row's version, so it never lands over a change made
        since the trade was read: pass ``expected_version=trade.version`` from the record your
        change is based on, or the version this call reads is used. A changed trade is a
        ``ConflictError``, and so is re-opening a closed one.
        """
        unknown = sorted(set(fields) - _UPDATABLE)
        if unknown:
            raise ValidationError(f"{unknown[0]}: not an updatable trade column", field=unknown[0])
        current = await self.get_by_id(checked_id("trade_id", trade_id))
        if current is None:
            raise NotFoundError(f"no trade with id {trade_id} in scope {self.scope}")
        if expected_version is not None and expected_version != current.version:
            raise _changed(current, expected_version)
        if current.is_closed and fields.get("action", current.action) == TradeAction.OPEN:
            raise ConflictError(
                f"trade {current.trade_id!r} is {current.action}: a closed trade is never re-opened"
            )
        changed = dataclasses.replace(current, **fields)  # validates on construction
        values = {name: getattr(changed, name) for name in fields}
        stored = await self._update_if_current(TradeModel, Trade, current, values)
        if stored is None:
            raise _changed(current, current.version)
        return stored

    async def get_by_id(self, id: int) -> Trade | None:
        statement = self._select().where(TradeModel.id == checked_id("id", id))
        return one_or_none(Trade, await self._execute(statement))

    async def get_by_trade_id(self, trade_id: str) -> Trade | None:
        statement = self._select().where(TradeModel.trade_id == trade_id)
        return one_or_none(Trade, await self._execute(statement))

    async def get_recent(self, limit: int = 100) -> list[Trade]:
        """The most recently entered trades, newest first."""
        statement = self._select().order_by(TradeModel.entry_time.desc(), TradeModel.id.desc())
        return all_records(Trade, await self._execute(statement.limit(checked_limit(limit))))

    async def get_by_symbol(
        self, symbol: str, limit: int = 100, exchange: str = "binance"
    ) -> list[Trade]:
        """A symbol's trades on one exchange, newest first."""
        statement = (
            self._select()
            .where(TradeModel.symbol == symbol, TradeModel.exchange == exchange)
            .order_by(TradeModel.entry_time.desc(), TradeModel.id.desc())
            .limit(checked_limit(limit))
        )
        return all_records(Trade, await self._execute(statement))

    async def get_page(
        self,
        *,
        symbol: str | None = None,
        exchange: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> TradePage:
        """The trades entered in ``[start, end)`` (unbounded where None), of one symbol and
        exchange where given, newest first: ``limit`` of them after skipping ``offset``, and
        how many match in all (what a paged list shows)."""
        matching = self._in_scope(TradeModel)
        if symbol is not None:
            matching &= TradeModel.symbol == symbol
        if exchange is not None:
            matching &= TradeModel.exchange == exchange
        if start is not None:
            matching &= TradeModel.entry_time >= aware_utc("start", start)
        if end is not None:
            matching &= TradeModel.entry_time < aware_utc("end", end)
        page = (
            select(*TradeModel.__table__.columns)
            .where(matching)
            .order_by(TradeModel.entry_time.desc(), TradeModel.id.desc())
            .limit(checked_limit(limit))
            .offset(_offset(offset))
        )
        trades = all_records(Trade, await self._execute(page))
        total = (await self._execute(select(func.count()).where(matching))).scalar_one()
        return TradePage(trades, int(total))

    async def close_trade(
        self,
        trade_id: str,
        exit_price: Decimal,
        exit_time: datetime,
        fee: Decimal = Decimal(0),
        action: str = TradeAction.CLOSE,
    ) -> Trade:
        """Close an open trade: set the exit, add ``fee`` to its fees, and compute its PnL.

        The write is one conditional statement on the trade being open at the version read:
        of two closers exactly one wins, and the other gets a ``ConflictError``.
        """
        if action not in (TradeAction.CLOSE, TradeAction.LIQUIDATED):
            raise ValidationError(
                f"action: {action!r} does not close a trade (close or liquidated)", field="action"
            )
        trade = await self.get_by_trade_id(trade_id)
        if trade is None:
            raise NotFoundError(f"no trade with trade_id {trade_id!r} in scope {self.scope}")
        if trade.is_closed:
            raise ConflictError(f"trade {trade_id!r} is already {trade.action}")
        exit_price = to_decimal("exit_price", exit_price)
        total_fee = (trade.fee or Decimal(0)) + to_decimal("fee", fee)
        pnl, pct = realized_pnl(trade, exit_price, total_fee)
        if pct is None:
            log.warning("realized_pnl_pct beyond its column: stored as NULL", trade_id=trade_id)
        closed = dataclasses.replace(  # validates on construction
            trade,
            action=action,
            exit_price=exit_price,
            exit_time=exit_time,
            fee=total_fee,
            realized_pnl=pnl,
            realized_pnl_pct=pct,
        )
        values = {name: getattr(closed, name) for name in _CLOSING}
        # One conditional statement: of two closers, the second finds no open trade at the
        # version it read, and nothing of its exit is written.
        stored = await self._update_if_current(TradeModel, Trade, trade, values, _IS_OPEN)
        if stored is None:
            raise _changed(trade, trade.version, await self.get_by_trade_id(trade_id))
        return stored

    async def get_statistics(
        self,
        days: int = 30,
        exchange: str = "binance",
        symbol: str | None = None,
        *,
        starting_balance: Decimal | None = None,
    ) -> TradeStatistics:
        """Statistics of the trades closed (or liquidated) in the last ``days`` days."""
        since = days_ago(days)
        trades = self._in_scope(TradeModel) & (TradeModel.exchange == exchange)
        trades &= TradeModel.exit_time >= since
        if symbol is not None:
            trades &= TradeModel.symbol == symbol
        return await trade_statistics(self._session, trades, starting_balance)

    def _select(self) -> Any:
        return select(*TradeModel.__table__.columns).where(self._in_scope(TradeModel))


def realized_pnl(
    trade: Trade, exit_price: Decimal, fees: Decimal
) -> tuple[Decimal, Decimal | None]:
    """PnL after fees and funding, and its percentage of the margin (entry × quantity /
    leverage).

    The percentage is None when even its wide column cannot hold it (a tiny margin after a huge
    move): unknown rather than a trade that can never close. The PnL itself is money and is
    checked like any other: one that does not fit NUMERIC(20,8) is a ValidationError.
    """
    with localcontext(prec=60):  # wide enough that only the final quantize rounds
        move = exit_price - trade.entry_price
        if trade.side == Side.SHORT:
            move = -move
        funding = trade.funding or Decimal(0)
        pnl = (move * trade.quantity - fees + funding).quantize(MONEY, rounding=ROUND_HALF_UP)
    return pnl, pnl_percent(pnl, trade.entry_price, trade.quantity, trade.leverage)


def pnl_percent(
    pnl: Decimal, entry_price: Decimal, quantity: Decimal, leverage: Decimal | None
) -> Decimal | None:
    """``pnl`` as a percentage of the margin (entry × quantity / leverage); None when even its
    wide column cannot hold it."""
    with localcontext(prec=60):
        margin = entry_price * quantity / (leverage or Decimal(1))
        pct = (pnl / margin * 100).quantize(_PERCENT, rounding=ROUND_HALF_UP)
    return pct if Percent.holds(pct) else None


def _changed(trade: Trade, version: int | None, latest: Trade | None = None) -> ConflictError:
    """The error for a write that lost a race: say what the trade became, if we know."""
    if latest is not None and latest.is_closed:
        return ConflictError(
            f"trade {trade.trade_id!r} was {latest.action} by another writer; nothing was written"
        )
    return ConflictError(
        f"trade {trade.trade_id!r} changed since it was read (version {version}); "
        "read it again and retry; nothing was written"
    )
