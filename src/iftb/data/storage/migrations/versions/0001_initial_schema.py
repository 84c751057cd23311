"""Initial schema: the six tables, the open-position invariant, timestamp triggers and views.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from iftb.data.storage.sql_functions import SQLITE_NOW, utcnow
from iftb.data.storage.types import ExactNumeric, JSONDocument, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Money = ExactNumeric(20, 8)
Score = ExactNumeric(5, 4)
Leverage = ExactNumeric(5, 2)
Percent = ExactNumeric(10, 4)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# (table, column) pairs whose timestamp moves on every UPDATE.
TOUCHED = (
    ("trades", "updated_at"),
    ("positions", "last_updated"),
    ("daily_performance", "updated_at"),
)


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", BigId, sa.Identity(always=False), primary_key=True)


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", UTCDateTime(), server_default=utcnow(), nullable=False)


def _now_column(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, UTCDateTime(), server_default=utcnow(), nullable=nullable)


def _is_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "ohlcv",
        _id(),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("open", Money, nullable=False),
        sa.Column("high", Money, nullable=False),
        sa.Column("low", Money, nullable=False),
        sa.Column("close", Money, nullable=False),
        sa.Column("volume", Money, nullable=False),
        sa.Column("quote_volume", Money),
        sa.Column("trades_count", sa.Integer()),
        _created_at(),
        sa.UniqueConstraint(
            "symbol", "exchange", "timeframe", "timestamp", name="ohlcv_unique_candle"
        ),
    )
    op.create_index("ix_ohlcv_timestamp", "ohlcv", ["timestamp"])

    op.create_table(
        "trades",
        _id(),
        sa.Column("trade_id", sa.String(100), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("side", sa.String(10), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("entry_price", Money, nullable=False),
        sa.Column("exit_price", Money),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("leverage", Leverage, server_default=sa.text("1")),
        sa.Column("realized_pnl", Money),
        sa.Column("realized_pnl_pct", Percent),
        sa.Column("fee", Money, server_default=sa.text("0")),
        sa.Column("signal_score", Score),
        sa.Column("technical_score", Score),
        sa.Column("llm_score", Score),
        sa.Column("xgb_confidence", Score),
        sa.Column("stop_loss", Money),
        sa.Column("take_profit", Money),
        sa.Column("position_size_pct", Leverage),
        sa.Column("decision_reasons", JSONDocument),
        sa.Column("llm_analysis", JSONDocument),
        _now_column("entry_time", nullable=False),
        sa.Column("exit_time", UTCDateTime()),
        _now_column("updated_at"),
        _created_at(),
        sa.CheckConstraint("side IN ('long', 'short')", name=op.f("ck_trades_side")),
        sa.CheckConstraint(
            "action IN ('open', 'close', 'liquidated')", name=op.f("ck_trades_action")
        ),
        sa.UniqueConstraint("trade_id", name=op.f("uq_trades_trade_id")),
    )
    op.create_index("ix_trades_symbol_entry_time", "trades", ["symbol", "entry_time"])
    op.create_index(
        "ix_trades_exit_time",
        "trades",
        ["exit_time"],
        postgresql_where=sa.text("exit_time IS NOT NULL"),
        sqlite_where=sa.text("exit_time IS NOT NULL"),
    )
    op.create_index("ix_trades_action", "trades", ["action"])

    op.create_table(
        "positions",
        _id(),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("side", sa.String(10), nullable=False),
        sa.Column("entry_price", Money, nullable=False),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("leverage", Leverage, server_default=sa.text("1")),
        sa.Column("margin", Money, nullable=False),
        sa.Column("current_price", Money),
        sa.Column("unrealized_pnl", Money),
        sa.Column("unrealized_pnl_pct", Percent),
        sa.Column("liquidation_price", Money),
        sa.Column("stop_loss", Money),
        sa.Column("take_profit", Money),
        sa.Column("trailing_stop", Money),
        sa.Column("status", sa.String(20), server_default=sa.text("'open'"), nullable=False),
        sa.Column("trade_id", sa.String(100)),
        _now_column("entry_time", nullable=False),
        _now_column("last_updated"),
        _created_at(),
        sa.CheckConstraint("side IN ('long', 'short')", name=op.f("ck_positions_side")),
        sa.CheckConstraint(
            "status IN ('open', 'closed', 'liquidated')", name=op.f("ck_positions_status")
        ),
    )
    # A partial unique index (not a table constraint, which cannot carry a WHERE).
    op.create_index(
        "uq_positions_open_symbol_exchange_side",
        "positions",
        ["symbol", "exchange", "side"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )

    op.create_table(
        "llm_analysis_log",
        _id(),
        sa.Column("analysis_type", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20)),
        sa.Column("exchange", sa.String(50)),
        sa.Column("prompt_template", sa.String(100)),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("prompt_text", sa.Text()),
        sa.Column("response_text", sa.Text()),
        sa.Column("response_tokens", sa.Integer()),
        sa.Column("response_json", JSONDocument),
        sa.Column("total_tokens", sa.Integer()),
        sa.Column("estimated_cost", ExactNumeric(10, 6)),
        sa.Column("model_name", sa.String(100)),
        sa.Column("temperature", ExactNumeric(3, 2)),
        sa.Column("status", sa.String(20), server_default=sa.text("'success'"), nullable=False),
        sa.Column("error_message", sa.Text()),
        sa.Column("execution_time_ms", sa.Integer()),
        _created_at(),
        sa.CheckConstraint(
            "status IN ('success', 'error', 'timeout')", name=op.f("ck_llm_analysis_log_status")
        ),
    )
    op.create_index(
        "ix_llm_analysis_log_type_created_at", "llm_analysis_log", ["analysis_type", "created_at"]
    )
    op.create_index("ix_llm_analysis_log_created_at", "llm_analysis_log", ["created_at"])
    op.create_index("ix_llm_analysis_log_status", "llm_analysis_log", ["status"])

    op.create_table(
        "system_events",
        _id(),
        sa.Column("event_type", sa.String(50), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", JSONDocument),
        sa.Column("symbol", sa.String(20)),
        sa.Column("exchange", sa.String(50)),
        sa.Column("trade_id", sa.String(100)),
        sa.Column("position_id", sa.BigInteger()),
        sa.Column("stack_trace", sa.Text()),
        _created_at(),
        sa.CheckConstraint(
            "severity IN ('debug', 'info', 'warning', 'error', 'critical')",
            name=op.f("ck_system_events_severity"),
        ),
    )
    op.create_index(
        "ix_system_events_type_created_at", "system_events", ["event_type", "created_at"]
    )
    op.create_index("ix_system_events_created_at", "system_events", ["created_at"])
    op.create_index(
        "ix_system_events_severity_created_at", "system_events", ["severity", "created_at"]
    )

    op.create_table(
        "daily_performance",
        _id(),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("total_trades", sa.Integer(), server_default=sa.text("0")),
        sa.Column("winning_trades", sa.Integer(), server_default=sa.text("0")),
        sa.Column("losing_trades", sa.Integer(), server_default=sa.text("0")),
        sa.Column("win_rate", Leverage),
        sa.Column("gross_profit", Money, server_default=sa.text("0")),
        sa.Column("gross_loss", Money, server_default=sa.text("0")),
        sa.Column("net_pnl", Money, server_default=sa.text("0")),
        sa.Column("net_pnl_pct", Percent),
        sa.Column("total_fees", Money, server_default=sa.text("0")),
        sa.Column("avg_position_size", Money),
        sa.Column("max_position_size", Money),
        sa.Column("total_volume", Money),
        sa.Column("max_drawdown", Percent),
        sa.Column("max_drawdown_amount", Money),
        sa.Column("sharpe_ratio", Percent),
        sa.Column("profit_factor", Percent),
        sa.Column("starting_balance", Money),
        sa.Column("ending_balance", Money),
        sa.Column("peak_balance", Money),
        sa.Column("avg_trade_duration_minutes", sa.Integer()),
        sa.Column("longest_winning_streak", sa.Integer()),
        sa.Column("longest_losing_streak", sa.Integer()),
        _now_column("updated_at"),
        _created_at(),
        sa.UniqueConstraint("date", "exchange", name=op.f("uq_daily_performance_date_exchange")),
    )

    if _is_postgresql():
        _create_postgresql_extras()
    else:
        _create_sqlite_extras()


def _create_postgresql_extras() -> None:
    for table, column in (
        ("trades", "decision_reasons"),
        ("llm_analysis_log", "response_json"),
        ("system_events", "details"),
    ):
        op.create_index(f"ix_{table}_{column}", table, [column], postgresql_using="gin")
    for table, column in TOUCHED:
        op.execute(
            f"CREATE FUNCTION {table}_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n    NEW.{column} := statement_timestamp();\n    RETURN NEW;\nEND $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_touch()"
        )
    _create_views(
        minutes_between="EXTRACT(EPOCH FROM ({end} - {start})) / 60", now="statement_timestamp()"
    )


def _create_sqlite_extras() -> None:
    for table, column in TOUCHED:
        # SQLite cannot change NEW in a BEFORE trigger, so it touches the row after the update,
        # unless the statement set the column itself (the repositories do, so RETURNING sees it).
        op.execute(
            f"CREATE TRIGGER {table}_touch AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN NEW.{column} IS OLD.{column} "
            f"BEGIN UPDATE {table} SET {column} = {SQLITE_NOW} WHERE id = NEW.id; END"
        )
    _create_views(
        minutes_between="(julianday({end}) - julianday({start})) * 1440", now="datetime('now')"
    )


def _create_views(*, minutes_between: str, now: str) -> None:
    held = minutes_between.format(start="p.entry_time", end=now)
    duration = minutes_between.format(start="t.entry_time", end="t.exit_time")
    op.execute(
        "CREATE VIEW v_active_positions AS "
        "SELECT p.id, p.symbol, p.exchange, p.side, p.entry_price, p.quantity, p.leverage, "
        "p.margin, p.current_price, p.unrealized_pnl, p.unrealized_pnl_pct, "
        "p.liquidation_price, p.stop_loss, p.take_profit, p.trailing_stop, p.trade_id, "
        "p.entry_time, p.last_updated, t.signal_score, t.technical_score, t.llm_score, "
        f"t.xgb_confidence, CAST({held} AS INTEGER) AS minutes_held "
        "FROM positions p LEFT JOIN trades t ON t.trade_id = p.trade_id "
        "WHERE p.status = 'open'"
    )
    op.execute(
        "CREATE VIEW v_recent_trades AS "
        "SELECT t.id, t.trade_id, t.symbol, t.exchange, t.side, t.action, t.entry_price, "
        "t.exit_price, t.quantity, t.leverage, t.realized_pnl, t.realized_pnl_pct, t.fee, "
        f"t.entry_time, t.exit_time, CAST({duration} AS INTEGER) AS duration_minutes "
        "FROM trades t WHERE t.action <> 'open' AND t.exit_time IS NOT NULL "
        "ORDER BY t.exit_time DESC LIMIT 100"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_recent_trades")
    op.execute("DROP VIEW IF EXISTS v_active_positions")
    for table, _column in TOUCHED:
        op.execute(
            f"DROP TRIGGER IF EXISTS {table}_touch" + (f" ON {table}" if _is_postgresql() else "")
        )
        if _is_postgresql():
            op.execute(f"DROP FUNCTION IF EXISTS {table}_touch()")
    for table in (
        "daily_performance",
        "system_events",
        "llm_analysis_log",
        "positions",
        "trades",
        "ohlcv",
    ):
        op.drop_table(table)
