"""An index for a scope's newest trades: the dashboard's trade list.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

``TradeRepository.get_page`` lists a scope's trades newest first by entry time (then id). No
index served that order within a scope, so the first page of a scope of 100k trades was a scan
and a top-N sort (0.09 s at p50 on both backends, measured by ``benchmarks.bench_web``). A pair
of partial indexes, as the scope's keys are: (bot, mode, entry_time, id) for live and paper rows,
(run_id, entry_time, id) for a backtest's; a page is then a walk down one of them, and its total
an index-only count.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("entry_time", "id")


def upgrade() -> None:
    for prefix, scope, where in (
        ("scope", ("bot", "mode"), "run_id IS NULL"),
        ("run", ("run_id",), "run_id IS NOT NULL"),
    ):
        op.create_index(
            f"ix_trades_{prefix}_entry_time_id",
            "trades",
            [*scope, *COLUMNS],
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    for prefix in ("scope", "run"):
        op.drop_index(f"ix_trades_{prefix}_entry_time_id", "trades")
