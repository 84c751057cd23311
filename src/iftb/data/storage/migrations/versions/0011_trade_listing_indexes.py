"""A scope's trades in entry or exit order: newest-first pages, statistics, the last close.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

``TradeRepository.get_page`` (the dashboard's trade list) reads a scope's trades newest first
and counts them. Without an index on the scope and the entry time, the newest page of a 100k-trade
backtest sorted every trade of the run (158 ms p95 on PostgreSQL, 167 ms on SQLite). Each index is
a pair, as the scope's keys are: (bot, mode, ...) for live and paper rows, (run_id, bot, mode,
...) for a backtest's, so a page's count reads the index alone. The symbol's pair replaces
``ix_trades_symbol_entry_time``: every read of a symbol's trades is within a scope, and with one
more equality column SQLite picks it without planner statistics, which it does not keep. The exit
time's pair replaces ``ix_trades_scope_exit_time`` (bot, mode, exit time), which made a backtest's
statistics and its last close read every run of the bot.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTINGS = (
    ("entry_time", ("entry_time", "id")),
    ("exit_time", ("exit_time", "id")),
    ("symbol_entry_time", ("symbol", "entry_time", "id")),
)


def upgrade() -> None:
    op.drop_index("ix_trades_symbol_entry_time", "trades")
    op.drop_index("ix_trades_scope_exit_time", "trades")
    for name, columns in LISTINGS:
        for prefix, scope, where in (
            ("scope", ("bot", "mode"), "run_id IS NULL"),
            ("run", ("run_id", "bot", "mode"), "run_id IS NOT NULL"),
        ):
            op.create_index(
                f"ix_trades_{prefix}_{name}",
                "trades",
                [*scope, *columns],
                postgresql_where=sa.text(where),
                sqlite_where=sa.text(where),
            )


def downgrade() -> None:
    for name, _columns in LISTINGS:
        for prefix in ("scope", "run"):
            op.drop_index(f"ix_trades_{prefix}_{name}", "trades")
    op.create_index("ix_trades_symbol_entry_time", "trades", ["symbol", "entry_time"])
    op.create_index(
        "ix_trades_scope_exit_time",
        "trades",
        ["bot", "mode", "exit_time"],
        postgresql_where=sa.text("exit_time IS NOT NULL"),
        sqlite_where=sa.text("exit_time IS NOT NULL"),
    )
