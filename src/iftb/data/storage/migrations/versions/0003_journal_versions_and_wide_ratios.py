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

* The views' minute counts round half up from exact microseconds on both backends (0001 cast a
  fraction of minutes to INTEGER, which PostgreSQL rounds and SQLite truncates).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from iftb.data.storage.sql_functions import SQLITE_NOW

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

# Whole minutes between two UTC timestamps. 0001 cast a fractional number of minutes to INTEGER,
# which PostgreSQL rounds and SQLite truncates (89.6 s was 1 minute or 0); from 0003 both round
# half up from exact microseconds.
ROUNDED_MINUTES = {
    "postgresql": "CAST(round(EXTRACT(EPOCH FROM ({end} - {start})) / 60) AS INTEGER)",
    "sqlite": "(({end_us} - {start_us} + 30000000) / 60000000)",
}
CAST_MINUTES = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM ({end} - {start})) / 60 AS INTEGER)",
    "sqlite": "CAST((julianday({end}) - julianday({start})) * 1440 AS INTEGER)",
}
NOW = {"postgresql": "statement_timestamp()", "sqlite": SQLITE_NOW}


def upgrade() -> None:
    for table in VERSIONED:
        op.add_column(
            table, sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
    _rebuild(ratio_type="NUMERIC(20, 4)", minutes=ROUNDED_MINUTES)


def downgrade() -> None:
    _rebuild(ratio_type="NUMERIC(10, 4)", minutes=CAST_MINUTES)
    for table in VERSIONED:
        op.drop_column(table, "version")  # SQLite >= 3.35 drops a column in place


def _rebuild(*, ratio_type: str, minutes: dict[str, str]) -> None:
    """Retype the ratio columns (PostgreSQL; SQLite stores exact decimals as text) and build
    the views again around the change: a column a view reads cannot change type."""
    dialect = op.get_context().dialect.name
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    if dialect == "postgresql":
        for table, column in WIDENED:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {ratio_type}")
    between = minutes[dialect]

    def whole_minutes(start: str, end: str) -> str:
        return between.format(
            start=start, end=end, start_us=_epoch_us(start), end_us=_epoch_us(end)
        )

    held = whole_minutes("p.entry_time", NOW[dialect])
    duration = whole_minutes("t.entry_time", "t.exit_time")
    op.execute(
        "CREATE VIEW v_active_positions AS "
        "SELECT p.id, p.symbol, p.exchange, p.side, p.entry_price, p.quantity, p.leverage, "
        "p.margin, p.current_price, p.unrealized_pnl, p.unrealized_pnl_pct, "
        "p.liquidation_price, p.stop_loss, p.take_profit, p.trailing_stop, p.trade_id, "
        "p.entry_time, p.last_updated, t.signal_score, t.technical_score, t.llm_score, "
        f"t.xgb_confidence, {held} AS minutes_held "
        "FROM positions p LEFT JOIN trades t ON t.trade_id = p.trade_id "
        "WHERE p.status = 'open'"
    )
    op.execute(
        "CREATE VIEW v_recent_trades AS "
        "SELECT t.id, t.trade_id, t.symbol, t.exchange, t.side, t.action, t.entry_price, "
        "t.exit_price, t.quantity, t.leverage, t.realized_pnl, t.realized_pnl_pct, t.fee, "
        f"t.entry_time, t.exit_time, {duration} AS duration_minutes "
        "FROM trades t WHERE t.action <> 'open' AND t.exit_time IS NOT NULL "
        "ORDER BY t.exit_time DESC LIMIT 100"
    )


def _epoch_us(column: str) -> str:
    """Exact microseconds since the epoch of SQLite's fixed-width UTC text."""
    return (
        f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000 "
        f"+ CAST(substr({column}, 21, 6) AS INTEGER))"
    )
