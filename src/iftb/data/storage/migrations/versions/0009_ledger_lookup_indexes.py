"""Indexes for the ledger's lookups, per scope: a trade's orders, and every position of one side
of a symbol.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Recording one fill reads the orders of its trade (by ``trade_id``) and the positions of its
symbol and side (any status). Neither had an index a scope could use, so every fill scanned the
scope's orders and positions: live recording slowed as the ledger grew (measured: 42 to 6 fills
per second on SQLite beside a 100k-fill history), and on PostgreSQL, before the first ANALYZE
after a bulk history, the scan could outlast the statement timeout. Each is a pair of partial
indexes, as the scope's unique keys are: (bot, mode, ...) for live and paper rows, (run_id, ...)
for a backtest's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("orders", "trade_id", ("trade_id",)),
    ("positions", "symbol_exchange_side", ("symbol", "exchange", "side")),
)


def upgrade() -> None:
    for table, name, columns in INDEXES:
        for prefix, scope, where in (
            ("scope", ("bot", "mode"), "run_id IS NULL"),
            ("run", ("run_id",), "run_id IS NOT NULL"),
        ):
            op.create_index(
                f"ix_{table}_{prefix}_{name}",
                table,
                [*scope, *columns],
                postgresql_where=sa.text(where),
                sqlite_where=sa.text(where),
            )


def downgrade() -> None:
    for table, name, _columns in INDEXES:
        for prefix in ("scope", "run"):
            op.drop_index(f"ix_{table}_{prefix}_{name}", table)
