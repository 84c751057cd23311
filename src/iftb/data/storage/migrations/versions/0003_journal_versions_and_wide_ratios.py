"""Journal hardening: optimistic versions on mutable rows, ratio columns wide enough for every
value the layer computes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

* ``trades.version`` and ``positions.version`` (INTEGER, starting at 1): every update the
  repositories make is conditional on the version the caller read and bumps it, so a write based
  on a stale read is refused (``ConflictError``) instead of silently replacing newer values.
* The percentages and ratios the layer computes were ``NUMERIC(10, 4)``: a 125x trade after a
  large move overflowed ``realized_pnl_pct`` and could never close. They become
  ``NUMERIC(20, 4)``. SQLite stores exact decimals as text, so only PostgreSQL changes type; the
  column rules (and so SQLite's refusals) follow the models.

PostgreSQL cannot change the type of a column a view reads, so the views are dropped and
recreated around the change from their own stored definitions.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = ("trades", "positions")
WIDENED = (
    ("trades", "realized_pnl_pct"),
    ("positions", "unrealized_pnl_pct"),
    ("daily_performance", "net_pnl_pct"),
    ("daily_performance", "max_drawdown"),
    ("daily_performance", "sharpe_ratio"),
    ("daily_performance", "profit_factor"),
)
VIEWS = ("v_active_positions", "v_recent_trades")


def upgrade() -> None:
    for table in VERSIONED:
        op.add_column(
            table, sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
    _retype_ratios("NUMERIC(20, 4)")


def downgrade() -> None:
    _retype_ratios("NUMERIC(10, 4)")
    for table in VERSIONED:
        op.drop_column(table, "version")  # SQLite >= 3.35 drops a column in place


def _retype_ratios(sql_type: str) -> None:
    """Change the ratio columns' type on PostgreSQL, with the views that read them set aside."""
    if op.get_context().dialect.name != "postgresql":
        return
    definition_of = sa.text("SELECT pg_get_viewdef(CAST(:view AS regclass))")
    definitions = {
        view: op.get_bind().execute(definition_of, {"view": view}).scalar_one() for view in VIEWS
    }
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    for table, column in WIDENED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {sql_type}")
    for view, definition in definitions.items():
        op.execute(f"CREATE VIEW {view} AS {definition}")
