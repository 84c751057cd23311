"""Recording a whole history of orders, fills and funding at once: a bot's past backfilled from
the exchange, or a backtest's ledger, at bulk speed.

Every record is checked first (a bad one rejects the batch, naming its list and row). The
series it touches (exchange and symbol) are locked in sorted order, their stored rows read
once, and the ledger they make with the batch computed in memory (``ledger_book``, the rules
of the one-at-a-time path). Then only what changes is written, in bulk: new rows by COPY on
PostgreSQL (``executemany`` on SQLite), changed ones by primary key. Replaying a history
already recorded writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage.enums import PositionStatus
from iftb.data.storage.errors import ValidationError, translated_errors
from iftb.data.storage.ledger_book import (
    SeriesBook,
    check_fill,
    check_not_reopened,
    check_same_order,
    check_same_trade,
    order_progress,
    position_status,
)
from iftb.data.storage.ledger_math import TradeFigures
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.ledger_records import Fill, FundingPayment, HistoryCounts, Order
from iftb.data.storage.models import PositionModel, TradeModel
from iftb.data.storage.records import ValidatedRecord
from iftb.data.storage.repositories.base import GENERATED_COLUMNS
from iftb.data.storage.repositories.journal.rows import (
    bulk_insert,
    cycle_collector_paused,
    lock_ledger,
)
from iftb.data.storage.repositories.journal.scoped import ScopedRepository, claimed
from iftb.data.storage.repositories.journal.trade_follower import position_values, trade_values
from iftb.data.storage.scopes import SCOPE_COLUMNS

Series = tuple[str, str]
RecordT = TypeVar("RecordT", bound=ValidatedRecord)


class _BulkColumns:
    """The columns a bulk insert of ``model`` sends: the record's own (all but the generated
    ones), then those the writer sets (``computed``, then the scope)."""

    def __init__(self, model: type[DeclarativeBase], *computed: str) -> None:
        names = model.__table__.columns.keys()
        set_here = (*computed, *SCOPE_COLUMNS)
        own = tuple(n for n in names if n not in GENERATED_COLUMNS and n not in set_here)
        self.names = (*own, *set_here)
        self._own = attrgetter(*own)

    def row(
        self, record: object, computed: tuple[Any, ...], scope: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        """``record``'s row: its own values, then the ``computed`` ones and the ``scope``'s."""
        return (*self._own(record), *computed, *scope)


_ORDER_COLUMNS = _BulkColumns(OrderModel, "filled_quantity", "average_fill_price", "status")
_FILL_COLUMNS = _BulkColumns(FillModel, "order_id")
_FUNDING_COLUMNS = _BulkColumns(FundingPaymentModel, "trade_id")


@dataclass
class _Batch:
    """The batch checked: per series, its new records by natural key; and the list and row
    each record came from, to name it in an error."""

    books: dict[Series, SeriesBook]
    rows: dict[int, tuple[str, int]]
    """``id(record)`` → (list, row)."""

    def at(self, record: object, error: ValidationError) -> ValidationError:
        """``error`` located at ``record``'s list and row, when it came in this batch."""
        where = self.rows.get(id(record))
        return error if where is None else error.at_index(where[1], batch=where[0])


class HistoryWriter(ScopedRepository):
    """``LedgerRepository.record_history``: a history of orders, fills and funding in bulk."""

    async def record(
        self,
        orders: Sequence[Order],
        fills: Sequence[Fill],
        funding: Sequence[FundingPayment],
    ) -> HistoryCounts:
        batch = self._checked(orders, fills, funding)
        self._series = frozenset(batch.books)
        async with self._session.begin_nested():
            connection = await self._session.connection()
            for exchange, symbol in sorted(self._series):
                await lock_ledger(connection, self.scope, exchange, symbol)
            return await _Plan(self, batch, await self._stored()).write()

    def _checked(
        self,
        orders: Sequence[Order],
        fills: Sequence[Fill],
        funding: Sequence[FundingPayment],
    ) -> _Batch:
        """Each record validated and claimed for the scope; replays within the batch dropped;
        an order recorded twice with other terms refused."""
        books: dict[Series, SeriesBook] = defaultdict(SeriesBook)
        rows: dict[int, tuple[str, int]] = {}
        with cycle_collector_paused():
            for index, order in enumerate(self._valid("orders", orders)):
                book = books[order.exchange, order.symbol]
                first = book.orders.setdefault(order.client_order_id, order)
                if first is not order:
                    check_same_order(first, order)
                rows[id(order)] = ("orders", index)
            for index, fill in enumerate(self._valid("fills", fills)):
                books[fill.exchange, fill.symbol].fills.setdefault(fill.exchange_fill_id, fill)
                rows[id(fill)] = ("fills", index)
            for index, payment in enumerate(self._valid("funding", funding)):
                key = (payment.position_side, payment.funding_time)
                books[payment.exchange, payment.symbol].funding.setdefault(key, payment)
                rows[id(payment)] = ("funding", index)
        return _Batch(dict(books), rows)

    def _valid(self, kind: str, records: Iterable[RecordT]) -> Iterable[RecordT]:
        for index, record in enumerate(records):
            try:
                record.validate()
                claimed(record, self.scope, {})
            except ValidationError as exc:
                raise exc.at_index(index, batch=kind) from exc.__cause__
            yield record

    def of_series(self, model: Any) -> ColumnElement[bool]:
        """The rows of ``model`` in this scope on the batch's exchanges and symbols (a superset
        of its series, which the reader narrows)."""
        return and_(
            self._in_scope(model),
            model.exchange.in_(sorted({exchange for exchange, _ in self._series})),
            model.symbol.in_(sorted({symbol for _, symbol in self._series})),
        )

    async def _stored(self) -> _Stored:
        """The stored rows of the batch's series in this scope, read once per table."""

        async def read(model: Any) -> list[Mapping[str, Any]]:
            statement = select(*model.__table__.c).where(self.of_series(model))
            rows = (await self._execute(statement)).mappings()
            return [dict(row) for row in rows if (row["exchange"], row["symbol"]) in self._series]

        return _Stored(
            orders=[Order.from_row(row) for row in await read(OrderModel)],
            fills=[Fill.from_row(row) for row in await read(FillModel)],
            funding=[FundingPayment.from_row(row) for row in await read(FundingPaymentModel)],
            trades=await read(TradeModel),
            positions=await read(PositionModel),
        )


@dataclass
class _Stored:
    """What the scope already holds of the batch's series."""

    orders: list[Order]
    fills: list[Fill]
    funding: list[FundingPayment]
    trades: list[Mapping[str, Any]]
    positions: list[Mapping[str, Any]]


class _Plan:
    """The batch merged into its series' stored ledger, checked, computed, and written: only
    what is new or changed."""

    def __init__(self, writer: HistoryWriter, batch: _Batch, stored: _Stored) -> None:
        self._writer = writer
        self._batch = batch
        self._stored = stored
        self._scope = writer.scope.values()
        self._stamp = tuple(self._scope[name] for name in SCOPE_COLUMNS)
        self._now = datetime.now(UTC)
        self._order_ids: dict[tuple[str, str], int] = {}
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

    def _merge(self) -> None:
        for order in self._stored.orders:
            self._books[order.exchange, order.symbol].orders[order.client_order_id] = order
        for fill in self._stored.fills:
            self._books[fill.exchange, fill.symbol].fills[fill.exchange_fill_id] = fill
        for payment in self._stored.funding:
            key = (payment.position_side, payment.funding_time)
            self._books[payment.exchange, payment.symbol].funding[key] = payment
        for series, new in self._batch.books.items():
            book = self._books[series]
            for client_order_id, order in new.orders.items():
                known = book.orders.setdefault(client_order_id, order)
                if known is order:
                    self._new_orders.append(order)
                else:
                    check_same_order(known, order)
            for fill_id, fill in new.fills.items():
                if book.fills.setdefault(fill_id, fill) is fill:
                    self._new_fills.append(fill)
            for key, payment in new.funding.items():
                if book.funding.setdefault(key, payment) is payment:
                    self._new_funding.append(payment)

    async def write(self) -> HistoryCounts:
        self._check_trades()
        progress: dict[Series, dict[str, dict[str, Any]]] = {}
        figures: dict[Series, dict[str, TradeFigures]] = {}
        owners: dict[Series, dict[tuple[str, datetime], str | None]] = {}
        for series, book in self._books.items():
            by_order = book.fills_by_order()
            progress[series] = self._progress(book, by_order)
            figures[series], owners[series] = book.trades(by_order)
            self._check_not_reopened(book, figures[series], progress[series])
        await self._write_orders(progress)
        await self._write_fills()
        await self._write_funding(owners)
        trades = await self._write_trades(figures)
        await self._write_positions(figures)
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

    def _progress(
        self, book: SeriesBook, by_order: Mapping[str, Sequence[Fill]]
    ) -> dict[str, dict[str, Any]]:
        """Each order's filled quantity, average price and status; every fill checked against
        its order in time order, so the fill that overfills is the one named."""
        progress = {}
        for client_order_id, fills in by_order.items():
            order = book.orders[client_order_id]
            for position, fill in enumerate(fills):
                try:
                    check_fill(order, fill, fills[:position])
                except ValidationError as exc:
                    culprit = fill if id(fill) in self._batch.rows else order
                    raise self._batch.at(culprit, exc) from None
            progress[client_order_id] = order_progress(order, fills)
        return progress

    def _check_not_reopened(
        self,
        book: SeriesBook,
        trades: Mapping[str, TradeFigures],
        progress: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """No new order filled on a closed trade (``check_not_reopened``), named where its
        fill came in. Only a trade with a fill after its net quantity came back to zero can
        be one: its orders are looked at, with the statuses this batch gives them."""
        for trade_id, made in trades.items():
            if made.late_fill is None:
                continue
            orders = [
                replace(order, status=progress[order.client_order_id]["status"])
                if order.client_order_id in progress
                else order
                for order in book.orders.values()
                if order.trade_id == trade_id
            ]
            try:
                check_not_reopened(trade_id, made, orders)
            except ValidationError as exc:
                raise self._batch.at(book.fills[made.late_fill.fill_id], exc) from None

    # --- writes -----------------------------------------------------------------------------

    async def _write_orders(self, progress: Mapping[Series, Mapping[str, dict[str, Any]]]) -> None:
        """New orders in bulk, with what their fills make of them; stored orders whose fills
        arrived now, by id. Then every order's id, for the fills."""
        rows = [
            _ORDER_COLUMNS.row(order, tuple(made.values()), self._stamp)
            if (made := self._of(progress, order))
            else _ORDER_COLUMNS.row(order, (Decimal(0), None, order.status), self._stamp)
            for order in self._new_orders
        ]
        await self._insert(OrderModel, _ORDER_COLUMNS.names, rows)
        changes = [
            {"id": order.id, "version": (order.version or 0) + 1, "updated_at": self._now} | now
            for order in self._stored.orders
            if (now := self._of(progress, order)) and _differs(order.__getattribute__, now)
        ]
        await self._update(OrderModel, changes)
        statement = select(OrderModel.id, OrderModel.exchange, OrderModel.client_order_id)
        result = await self._writer._execute(statement.where(self._writer.of_series(OrderModel)))
        self._order_ids = {(row.exchange, row.client_order_id): row.id for row in result}

    async def _write_fills(self) -> None:
        """New fills in bulk, linked to their orders; stored fills whose order came now."""
        ids = self._order_ids
        rows = [
            _FILL_COLUMNS.row(fill, (ids.get(_order_key(fill)),), self._stamp)
            for fill in self._new_fills
        ]
        await self._insert(FillModel, _FILL_COLUMNS.names, rows)
        links = [
            {"id": fill.id, "order_id": ids[_order_key(fill)]}
            for fill in self._stored.fills
            if fill.order_id is None and _order_key(fill) in ids
        ]
        await self._update(FillModel, links)

    async def _write_funding(
        self, owners: Mapping[Series, Mapping[tuple[str, datetime], str | None]]
    ) -> None:
        """New payments in bulk, each with the trade open at its time; stored ones whose trade
        changed."""
        rows = [
            _FUNDING_COLUMNS.row(payment, (_owner(owners, payment),), self._stamp)
            for payment in self._new_funding
        ]
        await self._insert(FundingPaymentModel, _FUNDING_COLUMNS.names, rows)
        changes = [
            {"id": payment.id, "trade_id": owner}
            for payment in self._stored.funding
            if (owner := _owner(owners, payment)) != payment.trade_id
        ]
        await self._update(FundingPaymentModel, changes)

    async def _write_trades(self, figures: Mapping[Series, Mapping[str, TradeFigures]]) -> int:
        """New trades in bulk, changed ones by id; how many were written."""
        stored = {row["trade_id"]: row for row in self._stored.trades}
        rows, changes = [], []
        for trades in figures.values():
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
        if rows:
            await self._insert(TradeModel, tuple(rows[0]), [tuple(r.values()) for r in rows])
        await self._update(TradeModel, changes)
        return len(rows) + len(changes)

    async def _write_positions(self, figures: Mapping[Series, Mapping[str, TradeFigures]]) -> None:
        """One position per trade (``position_status``); an older position of another trade
        left open on a side where a ledger trade is open now is closed."""
        stored: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for row in self._stored.positions:
            stored[row["exchange"], row["symbol"], row["side"]].append(row)
        rows: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for series, trades in figures.items():
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
        if rows:
            await self._insert(PositionModel, tuple(rows[0]), [tuple(r.values()) for r in rows])

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _of(
        progress: Mapping[Series, Mapping[str, dict[str, Any]]], order: Order
    ) -> dict[str, Any]:
        return progress[order.exchange, order.symbol].get(order.client_order_id, {})

    async def _insert(
        self, model: type[DeclarativeBase], columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        if rows:
            await bulk_insert(await self._writer.session.connection(), model, columns, rows)

    async def _update(self, model: type[DeclarativeBase], rows: list[dict[str, Any]]) -> None:
        """Update rows by primary key, one ``executemany``."""
        if rows:
            with translated_errors():
                await self._writer.session.execute(update(model), rows)


def _differs(stored: Callable[[str], Any], values: Mapping[str, Any]) -> bool:
    return any(stored(name) != value for name, value in values.items())


def _order_key(fill: Fill) -> tuple[str, str]:
    return (fill.exchange, fill.client_order_id)


def _owner(
    owners: Mapping[Series, Mapping[tuple[str, datetime], str | None]], payment: FundingPayment
) -> str | None:
    return owners[payment.exchange, payment.symbol][payment.position_side, payment.funding_time]
