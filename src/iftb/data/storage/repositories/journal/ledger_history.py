"""Recording a whole history of orders, fills and funding at once: a bot's past backfilled from
the exchange, or a backtest's ledger, at bulk speed.

Every record was checked when built (the ledger's records are frozen); here each is claimed for
the scope (a bad one rejects the batch, naming its list and row). The series it touches
(exchange and symbol) are locked in sorted order, their stored rows read once, and the ledger
they make with the batch computed in memory (``ledger_book``, the rules of the one-at-a-time
path). Then only what changes is written, in bulk: new rows by COPY on PostgreSQL
(``executemany`` on SQLite), changed ones by primary key. Replaying a history already recorded
writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from operator import attrgetter
from typing import Any

from sqlalchemy import ColumnElement, and_, select

from iftb.data.storage.errors import ValidationError
from iftb.data.storage.ledger_book import SeriesBook, check_replay
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.ledger_records import Fill, FundingPayment, HistoryCounts, Order
from iftb.data.storage.models import PositionModel, TradeModel
from iftb.data.storage.records import ValidatedRecord
from iftb.data.storage.repositories.journal.history_plan import Batch, HistoryPlan, Series, Stored
from iftb.data.storage.repositories.journal.rows import cycle_collector_paused, lock_ledger
from iftb.data.storage.repositories.journal.scoped import ScopedRepository, claimed
from iftb.data.storage.scopes import SCOPE_COLUMNS

_SCOPE_OF = attrgetter(*SCOPE_COLUMNS)
_RAW_OF = attrgetter("raw")
_RAW = Order._rules["raw"]
"""An order's JSON document: the one part of a frozen record that can still change."""


class HistoryWriter(ScopedRepository):
    """``LedgerRepository.record_history``: a history of orders, fills and funding in bulk."""

    async def record(
        self,
        orders: Sequence[Order],
        fills: Sequence[Fill],
        funding: Sequence[FundingPayment],
    ) -> HistoryCounts:
        with cycle_collector_paused():  # the whole call: see rows.cycle_collector_paused
            batch = self._checked(orders, fills, funding)
            self._series = frozenset(batch.books)
            async with self._session.begin_nested():
                connection = await self._session.connection()
                for exchange, symbol in sorted(self._series):
                    await lock_ledger(connection, self.scope, exchange, symbol)
                plan = HistoryPlan(self, batch, await self._stored())
                counts = await plan.write()
            del plan, batch  # freed (by reference counting) before the collector resumes
        return counts

    def _checked(
        self,
        orders: Sequence[Order],
        fills: Sequence[Fill],
        funding: Sequence[FundingPayment],
    ) -> Batch:
        """Each record claimed for the scope; replays within the batch dropped; a record given
        twice with other terms refuses the batch (``check_replay``).

        The records were checked when built, and are frozen (``dataclasses.replace`` builds a
        new one, checked again): all but an order's JSON document, whose insides its caller may
        have changed since, checked again here. Checking 150k records again cost a fifth of a
        100k-fill history."""
        for index, raw in enumerate(map(_RAW_OF, orders)):
            if raw is not None:
                self._check(_RAW, raw, "orders", index)
        self._claim_all("orders", orders)
        self._claim_all("fills", fills)
        self._claim_all("funding", funding)
        books: dict[Series, SeriesBook] = defaultdict(SeriesBook)
        for order in orders:
            _keep(books[order.exchange, order.symbol].orders, order.client_order_id, order)
        for fill in fills:
            _keep(books[fill.exchange, fill.symbol].fills, fill.exchange_fill_id, fill)
        for payment in funding:
            key = (payment.position_side, payment.funding_time)
            _keep(books[payment.exchange, payment.symbol].funding, key, payment)
        return Batch(dict(books), {"orders": orders, "fills": fills, "funding": funding})

    def _claim_all(self, kind: str, records: Sequence[ValidatedRecord]) -> None:
        """Every record of this scope, or of none (it takes this one): the scopes the records
        name, collected at C speed; the rare batch naming another one looked at row by row."""
        own, unset = _SCOPE_OF(self.scope), (None,) * len(SCOPE_COLUMNS)
        with suppress(TypeError):  # a scope value that cannot be hashed is looked at below
            if set(map(_SCOPE_OF, records)) <= {own, unset}:
                return
        for index, record in enumerate(records):
            self._check(lambda named: claimed(named, self.scope, {}), record, kind, index)

    @staticmethod
    def _check(rule: Callable[[Any], Any], value: Any, kind: str, index: int) -> None:
        try:
            rule(value)
        except ValidationError as exc:
            raise exc.at_index(index, batch=kind) from exc.__cause__

    def of_series(self, model: Any) -> ColumnElement[bool]:
        """The rows of ``model`` in this scope on the batch's exchanges and symbols (a superset
        of its series, which the reader narrows)."""
        return and_(
            self._in_scope(model),
            model.exchange.in_(sorted({exchange for exchange, _ in self._series})),
            model.symbol.in_(sorted({symbol for _, symbol in self._series})),
        )

    async def _stored(self) -> Stored:
        """The stored rows of the batch's series in this scope, read once per table."""

        async def read(model: Any) -> list[Mapping[str, Any]]:
            statement = select(*model.__table__.c).where(self.of_series(model))
            rows = (await self._execute(statement)).mappings()
            return [dict(row) for row in rows if (row["exchange"], row["symbol"]) in self._series]

        return Stored(
            orders=[Order.from_row(row) for row in await read(OrderModel)],
            fills=[Fill.from_row(row) for row in await read(FillModel)],
            funding=[FundingPayment.from_row(row) for row in await read(FundingPaymentModel)],
            trades=await read(TradeModel),
            positions=await read(PositionModel),
        )


def _keep(kept: dict[Any, Any], key: Any, record: Order | Fill | FundingPayment) -> None:
    """The first record under ``key``; one given again must be the same (``check_replay``)."""
    first = kept.setdefault(key, record)
    if first is not record:
        check_replay(first, record)
