"""The raw driver's side of the futures ledger figures (``bench_ledger``): the floor of the
same writes, on its own connection to the benchmark database.

Live, each event in its own transaction, every value computed before the clock with the
ledger's own rules (no reads): an order is one INSERT; a fill an INSERT of the fill with its
order's id, an UPDATE of the order's filled quantity, average price and status, an upsert of the
trade (ON CONFLICT on the partial unique index uq_trades_scope_trade_id) and an INSERT, or
UPDATE by id, of its position. In bulk, the rows a history stores, in one transaction: orders by
binary COPY (``executemany`` of the stored form on SQLite), their ids read back, fills with
those ids, funding, trades and positions.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.databases import Database
from benchmarks.raw_driver import DriverRow
from benchmarks.raw_sqlite import stored_form
from iftb.data.storage import Fill, Order, Scope
from iftb.data.storage.engine import SQLITE_PRAGMAS
from iftb.data.storage.enums import OrderType, Side
from iftb.data.storage.ledger_book import executions, order_progress, position_status
from iftb.data.storage.ledger_math import trade_figures
from iftb.data.storage.ledger_models import FillModel, FundingPaymentModel, OrderModel
from iftb.data.storage.models import PositionModel, TradeModel
from iftb.data.storage.repositories.base import GENERATED_COLUMNS
from iftb.data.storage.repositories.journal.trade_follower import position_values, trade_values

SCOPE = Scope("bench", "live")
"""The scope both sides write."""
MODELS: dict[str, Any] = {
    "orders": OrderModel,
    "fills": FillModel,
    "funding_payments": FundingPaymentModel,
    "trades": TradeModel,
    "positions": PositionModel,
}
COLUMNS = {
    table: tuple(c.name for c in model.__table__.columns if c.name not in GENERATED_COLUMNS)
    for table, model in MODELS.items()
}
"""What each table stores of a row: all but the generated columns (id, timestamps, version)."""
KEYS = {
    "orders": ("exchange", "client_order_id"),
    "fills": ("exchange", "symbol", "exchange_fill_id"),
    "funding_payments": ("exchange", "symbol", "position_side", "funding_time"),
    "trades": ("trade_id",),
    "positions": ("trade_id",),
}
_FILL_ORDER = COLUMNS["fills"].index("order_id")
_FILL_KEY = (COLUMNS["fills"].index("exchange"), COLUMNS["fills"].index("client_order_id"))
_CLEAR = ("fills", "funding_payments", "orders", "trades", "positions")

# --- live: each event's statements, values computed before the clock ----------------------

_ORDER_INSERT = tuple(name for name in COLUMNS["orders"] if name not in ("raw", "run_id"))
_FILL_INSERT = (*(name for name in COLUMNS["fills"] if name not in ("order_id", "run_id")),
                "order_id")  # fmt: skip
_PROGRESS = ("filled_quantity", "average_fill_price", "status")
_TRADE_ROW = ("symbol", "exchange", "side", "action", "entry_price", "quantity", "exit_price",
              "fee", "funding", "realized_pnl", "realized_pnl_pct", "entry_time", "exit_time",
              "trade_id", "bot", "mode")  # fmt: skip
_POSITION_ROW = ("symbol", "exchange", "side", "entry_price", "quantity", "margin", "status",
                 "entry_time", "trade_id", "bot", "mode")  # fmt: skip
_POSITION_SET = ("entry_price", "quantity", "margin", "status", "entry_time")
WRITTEN = COLUMNS | {"trades": (*_TRADE_ROW, "run_id"), "positions": (*_POSITION_ROW, "run_id")}
"""The columns a history writes: the library leaves the trades' and positions' others to their
defaults (leverage 1, stored as the default's own text on SQLite), and so does the raw side."""


def _statements(mark: str) -> dict[str, str]:
    """Each live statement with ``mark`` placeholders (``$`` numbered, or ``?``)."""

    def at(index: int) -> str:
        return "?" if mark == "?" else f"${index}"

    def insert(table: str, columns: Sequence[str]) -> str:
        marks = ", ".join(at(i) for i in range(1, len(columns) + 1))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608

    def assign(columns: Sequence[str]) -> str:
        return ", ".join(f"{name} = {at(i)}" for i, name in enumerate(columns, 1))

    trade_set = ", ".join(f"{name} = excluded.{name}" for name in _TRADE_ROW[:-3])
    return {
        "order": insert("orders", _ORDER_INSERT) + " RETURNING id",
        "fill": insert("fills", _FILL_INSERT),
        "progress": f"UPDATE orders SET {assign(_PROGRESS)} WHERE id = {at(4)}",  # noqa: S608
        "trade": insert("trades", _TRADE_ROW) + " ON CONFLICT (bot, mode, trade_id) "
        f"WHERE run_id IS NULL DO UPDATE SET {trade_set}",
        "position": insert("positions", _POSITION_ROW) + " RETURNING id",
        "moved": f"UPDATE positions SET {assign(_POSITION_SET)} WHERE id = {at(6)}",  # noqa: S608
    }


@dataclass(frozen=True)
class Step:
    """One event of the live stream as the raw driver writes it, every value ready: an order's
    INSERT (``_ORDER_INSERT``), or a fill's INSERT (``_FILL_INSERT`` but the order id), its
    order's ``_PROGRESS``, its trade's row (``_TRADE_ROW``) and its position's INSERT
    (``_POSITION_ROW``, on the trade's first fill) or ``_POSITION_SET``. ``key``: the client
    order id of the order, or of the fill's order."""

    key: str
    order: DriverRow = ()
    fill: DriverRow = ()
    progress: DriverRow = ()
    trade: DriverRow = ()
    position: DriverRow = ()
    trade_id: str = ""


def raw_steps(events: Sequence[Order | Fill], backend: str) -> list[Step]:
    """What each event writes, computed before the clock with the ledger's own rules
    (``ledger_book``, ``ledger_math``), in the driver's form."""

    def form(table: str, columns: Sequence[str]) -> Any:
        return stored_form(MODELS[table].__table__, columns) if backend == "sqlite" else tuple

    order_form, fill_form = form("orders", _ORDER_INSERT), form("fills", _FILL_INSERT[:-1])
    progress_form, trade_form = form("orders", _PROGRESS), form("trades", _TRADE_ROW)
    new_form, moved_form = form("positions", _POSITION_ROW), form("positions", _POSITION_SET)
    scope = {"bot": SCOPE.bot, "mode": SCOPE.mode}
    unfilled = {"filled_quantity": Decimal(0), "average_fill_price": None, "status": "new"}
    orders: dict[str, Order] = {}
    of_order: dict[str, list[Fill]] = defaultdict(list)
    of_trade: dict[str, list[Order]] = defaultdict(list)
    latest: dict[tuple[str, str], datetime] = {}
    steps = []
    for event in events:
        if isinstance(event, Order):
            orders[event.client_order_id] = event
            of_trade[event.trade_id].append(event)
            values = {name: getattr(event, name) for name in _ORDER_INSERT} | scope | unfilled
            row = order_form([values[name] for name in _ORDER_INSERT])
            steps.append(Step(event.client_order_id, order=row))
            continue
        order = orders[event.client_order_id]
        of_order[order.client_order_id].append(event)
        mine = of_trade[order.trade_id]
        done = [fill for other in mine for fill in of_order[other.client_order_id]]
        liquidating = (o.client_order_id for o in mine if o.order_type == OrderType.LIQUIDATION)
        figures = trade_figures(Side(order.position_side), executions(done, liquidating))
        assert figures is not None, "the stream opens every trade before it closes it"
        series = (order.symbol, order.position_side)
        latest[series] = max(latest.get(series, figures.entry_time), figures.entry_time)
        position = position_values(mine[0], figures, position_status(figures, latest[series]))
        trade = trade_values(mine[0], figures) | {"trade_id": order.trade_id} | scope
        fill = {name: getattr(event, name) for name in _FILL_INSERT[:-1]} | scope
        first_fill = len(done) == 1
        steps.append(
            Step(
                order.client_order_id,
                fill=fill_form([fill[name] for name in _FILL_INSERT[:-1]]),
                progress=progress_form(
                    list(order_progress(order, of_order[order.client_order_id]).values())
                ),
                trade=trade_form([trade[name] for name in _TRADE_ROW]),
                position=new_form([(position | trade)[name] for name in _POSITION_ROW])
                if first_fill
                else moved_form([position[name] for name in _POSITION_SET]),
                trade_id=order.trade_id,
            )
        )
    return steps


# --- the drivers ----------------------------------------------------------------------------


_SCOPED = f"bot = '{SCOPE.bot}' AND mode = '{SCOPE.mode}' AND run_id IS NULL"
_ORDER_IDS = f"SELECT exchange, client_order_id, id FROM orders WHERE {_SCOPED}"  # noqa: S608


def _with_order_ids(fills: Sequence[DriverRow], ids: Mapping[tuple[str, str], int]) -> list[Any]:
    """The fills with their order's id (of the orders just written) in ``order_id``."""
    exchange, client = _FILL_KEY
    return [
        (*row[:_FILL_ORDER], ids[row[exchange], row[client]], *row[_FILL_ORDER + 1 :])
        for row in fills
    ]


class RawPostgresLedger:
    """Bare asyncpg: one statement per write live, binary COPY in bulk."""

    _sql = _statements("$")

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, url: str) -> RawPostgresLedger:
        raw_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(
            raw_url, server_settings={"application_name": "iftb-bench-raw", "timezone": "UTC"}
        )
        return cls(connection)

    def prepare(self, table: str, rows: Sequence[Sequence[Any]]) -> list[DriverRow]:
        return [tuple(row) for row in rows]

    async def live(self, steps: Sequence[Step]) -> None:
        connection, sql = self._connection, self._sql
        orders: dict[str, int] = {}
        positions: dict[str, int] = {}
        for step in steps:
            async with connection.transaction():
                if step.order:
                    orders[step.key] = await connection.fetchval(sql["order"], *step.order)
                    continue
                order_id = orders[step.key]
                await connection.execute(sql["fill"], *step.fill, order_id)
                await connection.execute(sql["progress"], *step.progress, order_id)
                await connection.execute(sql["trade"], *step.trade)
                if step.trade_id in positions:
                    await connection.execute(sql["moved"], *step.position, positions[step.trade_id])
                else:
                    positions[step.trade_id] = await connection.fetchval(
                        sql["position"], *step.position
                    )

    async def bulk(self, rows: Mapping[str, Sequence[DriverRow]], convert: bool) -> None:
        connection = self._connection
        async with connection.transaction():
            for table in MODELS:
                records = rows[table]
                if table == "fills":
                    ids = {(e, c): i for e, c, i in await connection.fetch(_ORDER_IDS)}
                    records = _with_order_ids(records, ids)
                await connection.copy_records_to_table(
                    table, records=records, columns=list(WRITTEN[table])
                )

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._connection.fetch(sql)]

    async def clear(self) -> None:
        await self._connection.execute(f"TRUNCATE {', '.join(_CLEAR)}")

    async def close(self) -> None:
        await self._connection.close()


class RawSQLiteLedger:
    """Bare ``sqlite3``: the library's pragmas, values in their stored form."""

    _sql = _statements("?")

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None)
        for pragma, value in SQLITE_PRAGMAS.items():
            self._connection.execute(f"PRAGMA {pragma} = {value}")
        self._forms = {
            table: stored_form(model.__table__, WRITTEN[table]) for table, model in MODELS.items()
        }

    def prepare(self, table: str, rows: Sequence[Sequence[Any]]) -> list[DriverRow]:
        convert = self._forms[table]
        return [convert(row) for row in rows]

    async def live(self, steps: Sequence[Step]) -> None:
        execute, sql = self._connection.execute, self._sql
        orders: dict[str, int] = {}
        positions: dict[str, int] = {}
        for step in steps:
            execute("BEGIN IMMEDIATE")
            if step.order:
                orders[step.key] = execute(sql["order"], step.order).fetchone()[0]
            else:
                order_id = orders[step.key]
                execute(sql["fill"], (*step.fill, order_id))
                execute(sql["progress"], (*step.progress, order_id))
                execute(sql["trade"], step.trade)
                if step.trade_id in positions:
                    execute(sql["moved"], (*step.position, positions[step.trade_id]))
                else:
                    found = execute(sql["position"], step.position).fetchone()
                    positions[step.trade_id] = found[0]
            execute("COMMIT")

    async def bulk(self, rows: Mapping[str, Sequence[DriverRow]], convert: bool) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        for table in MODELS:
            records = self.prepare(table, rows[table]) if convert else rows[table]
            if table == "fills":
                ids = {(e, c): i for e, c, i in connection.execute(_ORDER_IDS)}
                records = _with_order_ids(records, ids)
            columns = WRITTEN[table]
            marks = ", ".join("?" * len(columns))
            statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
            connection.executemany(statement, records)
        connection.execute("COMMIT")

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._connection.execute(sql)]

    async def clear(self) -> None:
        self._connection.executescript("".join(f"DELETE FROM {t};" for t in _CLEAR))  # noqa: S608

    async def close(self) -> None:
        self._connection.close()


RawLedger = RawPostgresLedger | RawSQLiteLedger
"""The raw driver's own connection to the benchmark database: ``live`` writes each step in its
own transaction, ``bulk`` the five tables in one (``convert``: from native values, inside)."""


async def raw_ledger(db: Database) -> RawLedger:
    if db.backend == "postgresql":
        return await RawPostgresLedger.connect(db.url)
    return RawSQLiteLedger(db.url.split(":///", 1)[1])


async def stored_rows(raw: RawLedger) -> dict[str, list[tuple[Any, ...]]]:
    """What the five tables hold, as the driver reads it, by natural key; a fill's order id
    as its order's client order id (ids differ between runs, the link must not)."""
    orders = dict(await raw.fetch("SELECT id, client_order_id FROM orders"))
    rows = {}
    for table in MODELS:
        columns, keys = ", ".join(COLUMNS[table]), ", ".join(KEYS[table])
        sql = f"SELECT {columns} FROM {table} ORDER BY {keys}"  # noqa: S608
        rows[table] = await raw.fetch(sql)
    rows["fills"] = [
        (*row[:_FILL_ORDER], orders.get(row[_FILL_ORDER]), *row[_FILL_ORDER + 1 :])
        for row in rows["fills"]
    ]
    return rows
