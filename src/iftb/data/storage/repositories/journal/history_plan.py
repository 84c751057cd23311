"""What recording a history (``ledger_history``) writes: the batch merged with the stored
ledger of its series, checked and computed in memory (``ledger_book``), then written in bulk,
only what is new or changed: new rows column by column (COPY on PostgreSQL, ``executemany`` on
SQLite), changed ones by primary key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import select, update
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage.enums import PositionStatus
from iftb.data.storage.errors import ValidationError, translated_errors
from iftb.data.storage.ledger_book import (
    SeriesBook,
    check_fill,
    check_replay,
    check_same_trade,
    order_progress,
    position_status,
)
from iftb.data.storage.ledger_math import TradeFigures
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.ledger_records import Fill, FundingPayment, HistoryCounts, Order
from iftb.data.storage.models import PositionModel, TradeModel
from iftb.data.storage.repositories.base import GENERATED_COLUMNS
from iftb.data.storage.repositories.journal.rows import (
    bulk_insert_columns,
    cycle_collector_paused,
)
from iftb.data.storage.repositories.journal.trade_follower import position_values, trade_values
from iftb.data.storage.scopes import SCOPE_COLUMNS

if TYPE_CHECKING:
    from iftb.data.storage.repositories.journal.ledger_history import HistoryWriter

Series = tuple[str, str]
Record = TypeVar("Record", Order, Fill, FundingPayment)


class _BulkColumns:
    """The columns a bulk insert of ``model`` sends: the record's own (all but the generated
    ones), then those the writer sets (``computed``, then the scope)."""

    def __init__(self, model: type[DeclarativeBase], *computed: str) -> None:
        names = model.__table__.columns.keys()
        set_here = (*computed, *SCOPE_COLUMNS)
        self.own = tuple(n for n in names if n not in GENERATED_COLUMNS and n not in set_here)
        self._getters = [(name, attrgetter(name)) for name in self.own]

    def of(
        self, records: Sequence[object], computed: Mapping[str, list[Any]], scope: Mapping[str, Any]
    ) -> dict[str, list[Any]]:
        """The columns of ``records``: their own values, then the ``computed`` ones and the
        ``scope``'s (one value per record, column by column: no per-record Python code)."""
        columns = {name: list(map(getter, records)) for name, getter in self._getters}
        stamped = {name: [value] * len(records) for name, value in scope.items()}
        return columns | dict(computed) | stamped


_PROGRESS = ("filled_quantity", "average_fill_price", "status")
_ORDER_COLUMNS = _BulkColumns(OrderModel, *_PROGRESS)
_FILL_COLUMNS = _BulkColumns(FillModel, "order_id")
_FUNDING_COLUMNS = _BulkColumns(FundingPaymentModel, "trade_id")


@dataclass
class Batch:
    """The batch claimed: per series, its new records by natural key; and the lists they came
    in, to name a record's list and row in an error."""

    books: dict[Series, SeriesBook]
    lists: dict[str, Sequence[object]]

    def holds(self, record: object) -> bool:
        return self._where(record) is not None

    def at(self, record: object, error: ValidationError) -> ValidationError:
        """``error`` located at ``record``'s list and row, when it came in this batch."""
        where = self._where(record)
        return error if where is None else error.at_index(where[1], batch=where[0])

    def _where(self, record: object) -> tuple[str, int] | None:
        """(list, row) of ``record`` (its last place), looked up only for an error."""
        for kind, records in self.lists.items():
            for index in range(len(records) - 1, -1, -1):
                if records[index] is record:
                    return kind, index
        return None


@dataclass
class Stored:
    """What the scope already holds of the batch's series."""

    orders: list[Order]
    fills: list[Fill]
    funding: list[FundingPayment]
    trades: list[Mapping[str, Any]]
    positions: list[Mapping[str, Any]]


class HistoryPlan:
    """The batch merged into its series' stored ledger, checked and computed when built (no
    I/O: the cycle collector paused over it), then written: only what is new or changed."""

    def __init__(self, writer: HistoryWriter, batch: Batch, stored: Stored) -> None:
        self._writer = writer
        self._batch = batch
        self._stored = stored
        self._scope = writer.scope.values()
        self._now = datetime.now(UTC)
        self._books: dict[Series, SeriesBook] = defaultdict(SeriesBook)
        self._new_orders: list[Order] = []
        self._new_fills: list[Fill] = []
        self._new_funding: list[FundingPayment] = []
        self._merge()
        self._first: dict[str, Order] = {}
        """An order of each trade, stored or new (all of a trade's orders agree on its
        exchange, symbol and side once ``_check_trades`` has passed)."""
        for book in self._books.values():
            for order in book.orders.values():
                self._first.setdefault(order.trade_id, order)
        self._check_trades()
        self._progress: dict[Series, dict[str, dict[str, Any]]] = {}
        self._figures: dict[Series, dict[str, TradeFigures]] = {}
        self._owners: dict[Series, dict[tuple[str, datetime], str | None]] = {}
        for series, book in self._books.items():
            by_order = book.fills_by_order()
            self._progress[series] = self._settled(book, by_order)
            self._figures[series], self._owners[series] = book.trades(by_order)
        self._columns = {
            OrderModel: _ORDER_COLUMNS.of(self._new_orders, self._order_progress(), self._scope),
            FillModel: _FILL_COLUMNS.of(self._new_fills, {}, self._scope),
            FundingPaymentModel: _FUNDING_COLUMNS.of(
                self._new_funding,
                {"trade_id": [self._owner(payment) for payment in self._new_funding]},
                self._scope,
            ),
        }
        """The new rows of the ledger's own tables, column by column (the fills' order ids
        once the orders are written)."""

    def _merge(self) -> None:
        for order in self._stored.orders:
            self._books[order.exchange, order.symbol].orders[order.client_order_id] = order
        for fill in self._stored.fills:
            self._books[fill.exchange, fill.symbol].fills[fill.exchange_fill_id] = fill
        for payment in self._stored.funding:
            key = (payment.position_side, payment.funding_time)
            self._books[payment.exchange, payment.symbol].funding[key] = payment
        for series, new in self._batch.books.items():
            if series not in self._books:  # nothing stored: the batch's book, all new
                self._books[series] = new
                self._new_orders += new.orders.values()
                self._new_fills += new.fills.values()
                self._new_funding += new.funding.values()
                continue
            book = self._books[series]
            self._new_orders += _claimed(book.orders, new.orders)
            self._new_fills += _claimed(book.fills, new.fills)
            self._new_funding += _claimed(book.funding, new.funding)

    async def write(self) -> HistoryCounts:
        await self._write_orders()
        await self._write_fills()
        await self._write_funding()
        trades = await self._write_trades()
        await self._write_positions()
        return HistoryCounts(
            orders=len(self._new_orders),
            fills=len(self._new_fills),
            funding=len(self._new_funding),
            trades=trades,
        )

    # --- checks -----------------------------------------------------------------------------

    def _check_trades(self) -> None:
        """Every order of a trade on one exchange, symbol and position side; no fill for an
        order of another symbol."""
        for order in self._new_orders:
            try:
                check_same_trade(order, self._first[order.trade_id])
            except ValidationError as exc:
                raise self._batch.at(order, exc) from None
        orders = {
            (order.exchange, order.client_order_id): order
            for book in self._books.values()
            for order in book.orders.values()
        }
        for fill in self._new_fills:
            other = orders.get(_order_key(fill))
            if other is not None and other.symbol != fill.symbol:
                try:
                    check_fill(other, fill, ())
                except ValidationError as exc:
                    raise self._batch.at(fill, exc) from None

    def _settled(
        self, book: SeriesBook, by_order: Mapping[str, Sequence[Fill]]
    ) -> dict[str, dict[str, Any]]:
        """Each order's filled quantity, average price and status; every fill checked against
        its order in time order (``check_fill``), so the fill that overfills is the one named."""
        progress = {}
        for client_order_id, fills in by_order.items():
            order = book.orders[client_order_id]
            filled = Decimal(0)
            for position, fill in enumerate(fills):
                if (
                    fill.symbol != order.symbol
                    or fill.side != order.side
                    or fill.quantity > order.quantity - filled
                ):  # refused: check_fill says why
                    try:
                        check_fill(order, fill, fills[:position])
                    except ValidationError as exc:
                        culprit = fill if self._batch.holds(fill) else order
                        raise self._batch.at(culprit, exc) from None
                filled += fill.quantity
            progress[client_order_id] = order_progress(order, fills)
        return progress

    # --- writes -----------------------------------------------------------------------------

    def _order_progress(self) -> dict[str, list[Any]]:
        """The filled quantity, average price and status of each new order, a list each."""
        unfilled = (Decimal(0), None)
        made = [
            tuple(now.values()) if (now := self._of(order)) else (*unfilled, order.status)
            for order in self._new_orders
        ]
        progress = zip(*made, strict=True) if made else [[]] * len(_PROGRESS)
        return dict(zip(_PROGRESS, map(list, progress), strict=True))

    async def _write_orders(self) -> None:
        """New orders in bulk, with what their fills make of them; stored orders whose fills
        arrived now, by id. Then every order's id, for the fills."""
        await self._insert(OrderModel, self._columns[OrderModel])
        changes = [
            {"id": order.id, "version": (order.version or 0) + 1, "updated_at": self._now} | now
            for order in self._stored.orders
            if (now := self._of(order)) and _differs(order.__getattribute__, now)
        ]
        await self._update(OrderModel, changes)
        statement = select(OrderModel.exchange, OrderModel.client_order_id, OrderModel.id)
        result = await self._writer._execute(statement.where(self._writer.of_series(OrderModel)))
        rows = cast("Iterable[tuple[str, str, int]]", result)  # unpacked: cheaper than by name
        self._order_ids = {(exchange, client): id_ for exchange, client, id_ in rows}

    async def _write_fills(self) -> None:
        """New fills in bulk, linked to their orders; stored fills whose order came now."""
        ids = self._order_ids
        columns = self._columns[FillModel]
        with cycle_collector_paused():
            orders = zip(columns["exchange"], columns["client_order_id"], strict=True)
            columns["order_id"] = list(map(ids.get, orders))
        await self._insert(FillModel, columns)
        links = [
            {"id": fill.id, "order_id": ids[_order_key(fill)]}
            for fill in self._stored.fills
            if fill.order_id is None and _order_key(fill) in ids
        ]
        await self._update(FillModel, links)

    async def _write_funding(self) -> None:
        """New payments in bulk, each with the trade open at its time; stored ones whose trade
        changed."""
        await self._insert(FundingPaymentModel, self._columns[FundingPaymentModel])
        changes = [
            {"id": payment.id, "trade_id": owner}
            for payment in self._stored.funding
            if (owner := self._owner(payment)) != payment.trade_id
        ]
        await self._update(FundingPaymentModel, changes)

    async def _write_trades(self) -> int:
        """New trades in bulk, changed ones by id; how many were written."""
        stored = {row["trade_id"]: row for row in self._stored.trades}
        rows, changes = [], []
        for trades in self._figures.values():
            for trade_id, made in trades.items():
                values = trade_values(self._first[trade_id], made)
                row = stored.get(trade_id)
                if row is None:
                    rows.append(values | {"trade_id": trade_id} | self._scope)
                elif _differs(row.__getitem__, values):
                    changes.append(
                        {"id": row["id"], "version": row["version"] + 1, "updated_at": self._now}
                        | values
                    )
        await self._insert_rows(TradeModel, rows)
        await self._update(TradeModel, changes)
        return len(rows) + len(changes)

    async def _write_positions(self) -> None:
        """One position per trade (``position_status``); an older position of another trade
        left open on a side where a ledger trade is open now is closed."""
        stored: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for row in self._stored.positions:
            stored[row["exchange"], row["symbol"], row["side"]].append(row)
        rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for series, trades in self._figures.items():
            first = self._first
            for side in {first[trade_id].position_side for trade_id in trades}:
                mine = {t: made for t, made in trades.items() if first[t].position_side == side}
                found = stored[(*series, side)]
                own = {row["trade_id"]: row for row in found if row["trade_id"] in mine}
                others = [row for row in found if row["trade_id"] not in mine]
                latest = max(
                    [made.entry_time for made in mine.values()]
                    + [row["entry_time"] for row in others]
                )
                opened = False
                for trade_id, made in mine.items():
                    status = position_status(made, latest)
                    opened = opened or status == PositionStatus.OPEN
                    values = position_values(first[trade_id], made, status)
                    stored_row = own.get(trade_id)
                    if stored_row is None:
                        rows.append(values | {"trade_id": trade_id} | self._scope)
                    elif _differs(stored_row.__getitem__, values):
                        changes.append(
                            {"id": stored_row["id"], "version": stored_row["version"] + 1}
                            | {"last_updated": self._now}
                            | values
                        )
                if opened:
                    changes += [
                        {"id": row["id"], "status": PositionStatus.CLOSED.value}
                        | {"version": row["version"] + 1, "last_updated": self._now}
                        for row in others
                        if row["status"] == PositionStatus.OPEN
                    ]
        # One position per side may be open: what closes goes first, then what opens.
        changes.sort(key=lambda change: change.get("status") == PositionStatus.OPEN)
        await self._update(PositionModel, changes)
        await self._insert_rows(PositionModel, rows)

    # --- helpers ----------------------------------------------------------------------------

    def _of(self, order: Order) -> dict[str, Any]:
        return self._progress[order.exchange, order.symbol].get(order.client_order_id, {})

    def _owner(self, payment: FundingPayment) -> str | None:
        owners = self._owners[payment.exchange, payment.symbol]
        return owners[payment.position_side, payment.funding_time]

    async def _insert(self, model: type[DeclarativeBase], columns: dict[str, list[Any]]) -> None:
        if any(columns.values()):  # rows to insert (every column holds one value a row)
            connection = await self._writer.session.connection()
            await bulk_insert_columns(connection, model, columns)

    async def _insert_rows(self, model: type[DeclarativeBase], rows: list[dict[str, Any]]) -> None:
        """Rows of one shape (dicts of the same keys) in bulk."""
        if rows:
            columns = {name: [row[name] for row in rows] for name in rows[0]}
            await self._insert(model, columns)

    async def _update(self, model: type[DeclarativeBase], rows: list[dict[str, Any]]) -> None:
        """Update rows by primary key, one ``executemany``."""
        if rows:
            with translated_errors():
                await self._writer.session.execute(update(model), rows)


def _claimed(stored: dict[Any, Record], batch: Mapping[Any, Record]) -> list[Record]:
    """The records of ``batch`` not in ``stored`` (now added to it); one stored already must
    be the same record (``check_replay``)."""
    new = []
    for key, record in batch.items():
        known = stored.setdefault(key, record)
        if known is record:
            new.append(record)
        else:
            check_replay(known, record)
    return new


def _differs(stored: Callable[[str], Any], values: Mapping[str, Any]) -> bool:
    return any(stored(name) != value for name, value in values.items())


def _order_key(fill: Fill) -> tuple[str, str]:
    return (fill.exchange, fill.client_order_id)
