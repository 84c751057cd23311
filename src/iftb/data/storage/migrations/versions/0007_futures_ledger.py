"""The futures ledger: orders, fills and funding payments, and funding on trades.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

* ``orders``: per scope, unique by client order id (and by exchange order id when known) on
  an exchange; status in {new, partially_filled, filled, cancelled, rejected, expired}; the
  trade each belongs to.
* ``fills``: unique per scope by (exchange, symbol, exchange fill id), so a replayed fill is
  stored once; linked to their order when it is known (a fill may arrive first).
* ``funding_payments``: unique per scope by (exchange, symbol, position side, funding time).
* ``trades.funding``: the funding a trade received (positive) or paid while open; its
  ``realized_pnl`` includes it. ``daily_performance.total_funding``: the day's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from iftb.data.storage.sql_functions import utcnow
from iftb.data.storage.types import ExactNumeric, JSONDocument, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = ExactNumeric(20, 8)
SIDES = "('long', 'short')"
ORDER_SIDES = "('buy', 'sell')"
ORDER_TYPES = (
    "('market', 'limit', 'stop_market', 'stop_limit', 'take_profit_market', "
    "'take_profit_limit', 'trailing_stop_market', 'liquidation')"
)
STATUSES = "('new', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired')"
TIMES_IN_FORCE = "('gtc', 'ioc', 'fok', 'gtx')"


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    op.add_column("trades", sa.Column("funding", Money, server_default=sa.text("0")))
    op.add_column(
        "daily_performance", sa.Column("total_funding", Money, server_default=sa.text("0"))
    )
    op.create_table(
        "orders",
        *_common(),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("client_order_id", sa.String(100), nullable=False),
        sa.Column("exchange_order_id", sa.String(100)),
        sa.Column("trade_id", sa.String(100), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("position_side", sa.String(10), nullable=False),
        sa.Column("order_type", sa.String(30), nullable=False),
        sa.Column("time_in_force", sa.String(10)),
        sa.Column("reduce_only", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("price", Money),
        sa.Column("stop_price", Money),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("filled_quantity", Money, server_default=sa.text("0"), nullable=False),
        sa.Column("average_fill_price", Money),
        sa.Column("status", sa.String(20), server_default=sa.text("'new'"), nullable=False),
        sa.Column("placed_at", UTCDateTime(), server_default=utcnow(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=utcnow()),
        sa.Column("raw", JSONDocument),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        *_scope(),
        sa.CheckConstraint(f"side IN {ORDER_SIDES}", name=op.f("ck_orders_side")),
        sa.CheckConstraint(f"position_side IN {SIDES}", name=op.f("ck_orders_position_side")),
        sa.CheckConstraint(f"order_type IN {ORDER_TYPES}", name=op.f("ck_orders_order_type")),
        sa.CheckConstraint(f"status IN {STATUSES}", name=op.f("ck_orders_status")),
        *_scope_checks("orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    _unique_in_scope("orders", "client_order_id", ["exchange", "client_order_id"])
    _unique_in_scope(
        "orders",
        "exchange_order_id",
        ["exchange", "exchange_order_id"],
        "exchange_order_id IS NOT NULL",
    )
    op.create_table(
        "fills",
        *_common(),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("exchange_fill_id", sa.String(100), nullable=False),
        sa.Column("client_order_id", sa.String(100), nullable=False),
        sa.Column("order_id", Id, sa.ForeignKey("orders.id", ondelete="CASCADE")),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("price", Money, nullable=False),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("fee", Money, server_default=sa.text("0"), nullable=False),
        sa.Column("fee_asset", sa.String(20)),
        sa.Column("fee_quote", Money),
        sa.Column("is_maker", sa.Boolean()),
        sa.Column("filled_at", UTCDateTime(), nullable=False),
        *_scope(),
        sa.CheckConstraint(f"side IN {ORDER_SIDES}", name=op.f("ck_fills_side")),
        *_scope_checks("fills"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
    )
    op.create_index("ix_fills_order_id", "fills", ["order_id"])
    _unique_in_scope("fills", "exchange_fill_id", ["exchange", "symbol", "exchange_fill_id"])
    op.create_table(
        "funding_payments",
        *_common(),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("position_side", sa.String(10), nullable=False),
        sa.Column("funding_time", UTCDateTime(), nullable=False),
        sa.Column("rate", ExactNumeric(20, 12)),
        sa.Column("position_size", Money),
        sa.Column("mark_price", Money),
        sa.Column("amount", Money, nullable=False),
        sa.Column("trade_id", sa.String(100)),
        *_scope(),
        sa.CheckConstraint(
            f"position_side IN {SIDES}", name=op.f("ck_funding_payments_position_side")
        ),
        *_scope_checks("funding_payments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_payments")),
    )
    _unique_in_scope(
        "funding_payments",
        "symbol_side_time",
        ["exchange", "symbol", "position_side", "funding_time"],
    )
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION orders_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n    NEW.updated_at := statement_timestamp();\n    RETURN NEW;\nEND $$"
        )
        op.execute(
            "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders "
            "FOR EACH ROW EXECUTE FUNCTION orders_touch()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER orders_touch ON orders")
        op.execute("DROP FUNCTION orders_touch()")
    op.drop_table("funding_payments")
    op.drop_table("fills")
    op.drop_table("orders")
    op.drop_column("daily_performance", "total_funding")
    op.drop_column("trades", "funding")  # SQLite >= 3.35 drops a column in place


def _common() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", Id, sa.Identity(always=False), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=utcnow(), nullable=False),
    ]


def _scope() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("bot", sa.String(50), server_default="default", nullable=False),
        sa.Column("mode", sa.String(10), server_default="live", nullable=False),
        sa.Column(
            "run_id", Id, sa.ForeignKey("backtest_runs.id", ondelete="CASCADE"), nullable=True
        ),
    ]


def _scope_checks(table: str) -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint("mode IN ('live', 'paper', 'backtest')", name=op.f(f"ck_{table}_mode")),
        sa.CheckConstraint(
            "(mode = 'backtest') = (run_id IS NOT NULL)", name=op.f(f"ck_{table}_run_scope")
        ),
    ]


def _unique_in_scope(table: str, name: str, columns: list[str], where: str = "") -> None:
    extra = f" AND {where}" if where else ""
    for index, leading, condition in (
        (f"uq_{table}_scope_{name}", ["bot", "mode"], f"run_id IS NULL{extra}"),
        (f"uq_{table}_run_{name}", ["run_id"], f"run_id IS NOT NULL{extra}"),
    ):
        op.create_index(
            index,
            table,
            [*leading, *columns],
            unique=True,
            postgresql_where=sa.text(condition),
            sqlite_where=sa.text(condition),
        )
