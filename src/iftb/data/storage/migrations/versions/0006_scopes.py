"""Scopes: every journal row belongs to a bot, a mode and (for backtests) a run; backtest runs,
bot state and pair locks.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

* ``bot``, ``mode`` and ``run_id`` on trades, positions, daily performance, system events and the
  LLM call log. Existing rows become ``bot='default', mode='live'`` (the column defaults), so
  unscoped code keeps reading and writing what it did.
* The invariants move with the scope: trade ids, open positions and daily rows are unique per
  scope (a pair of partial unique indexes each: by bot and mode outside backtests, by run within
  one, since NULL runs never collide in a unique index).
* ``backtest_runs``; every journal row of a run references it ``ON DELETE CASCADE``, so deleting
  a run deletes its rows in one statement. ``iftb_delete_backtest_run`` (SECURITY DEFINER) lets
  the bot role delete runs, and through them backtest rows only: it has no DELETE on any table.
* ``bot_state`` (typed key-value per scope; whoever may write trades may delete a key) and
  ``pair_locks``.
* The views carry the scope; ``v_active_positions`` joins a position to its trade in the same
  scope (a trade id is unique per scope only).

The downgrade refuses while rows of any other scope exist: merging them into one would break the
old invariants (or lose rows).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from iftb.data.storage.errors import ConflictError
from iftb.data.storage.sql_functions import SQLITE_NOW, utcnow
from iftb.data.storage.types import JSONDocument, UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOURNAL = ("trades", "positions", "daily_performance", "system_events", "llm_analysis_log")
# unique per scope: (table, index name, columns, extra condition); the old key they replace
SCOPED_UNIQUE = (
    ("trades", "trade_id", ("trade_id",), ""),
    ("positions", "open_symbol_exchange_side", ("symbol", "exchange", "side"), "status = 'open'"),
    ("daily_performance", "date_exchange", ("date", "exchange"), ""),
)
RUN_INDEXED = ("system_events", "llm_analysis_log")
TOUCHED = {"trades": "updated_at", "positions": "last_updated", "daily_performance": "updated_at"}
MODES = "mode IN ('live', 'paper', 'backtest')"
RUN_SCOPE = "(mode = 'backtest') = (run_id IS NOT NULL)"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

DELETE_RUN = """
CREATE FUNCTION public.iftb_delete_backtest_run(run bigint)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    trades bigint;
BEGIN
    -- The run's journal rows go with it (ON DELETE CASCADE); live and paper rows have no run.
    SELECT count(*) INTO trades FROM public.trades WHERE run_id = run;
    DELETE FROM public.backtest_runs WHERE id = run;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN trades;
END $$"""

# A bot's state is not history: whoever may write the journal (INSERT on trades) may also
# forget a key of it. The grantees are read from trades' rights; nothing goes to PUBLIC.
STATE_DELETERS = """
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::pg_catalog.regrole::text
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = 'public.trades'::pg_catalog.regclass
          AND a.privilege_type = 'INSERT' AND a.grantee NOT IN (0, c.relowner)
    LOOP
        EXECUTE pg_catalog.format('GRANT DELETE ON public.bot_state TO %s', grantee);
    END LOOP;
END $$"""


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    _drop_views()
    _create_backtest_runs()
    for table in JOURNAL:
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.add_column(
                sa.Column("bot", sa.String(50), server_default="default", nullable=False)
            )
            batch.add_column(
                sa.Column("mode", sa.String(10), server_default="live", nullable=False)
            )
            batch.add_column(sa.Column("run_id", Id, nullable=True))
            batch.create_check_constraint(op.f(f"ck_{table}_mode"), MODES)
            batch.create_check_constraint(op.f(f"ck_{table}_run_scope"), RUN_SCOPE)
            batch.create_foreign_key(
                op.f(f"fk_{table}_run_id_backtest_runs"),
                "backtest_runs",
                ["run_id"],
                ["id"],
                ondelete="CASCADE",
            )
            if table == "trades":
                batch.drop_constraint(op.f("uq_trades_trade_id"), type_="unique")
            if table == "daily_performance":
                batch.drop_constraint(op.f("uq_daily_performance_date_exchange"), type_="unique")
    op.drop_index("uq_positions_open_symbol_exchange_side", "positions")
    op.drop_index("ix_trades_exit_time", "trades")
    for table, name, columns, where in SCOPED_UNIQUE:
        extra = f" AND {where}" if where else ""
        _partial(
            f"uq_{table}_scope_{name}", table, ["bot", "mode", *columns], f"run_id IS NULL{extra}"
        )
        _partial(
            f"uq_{table}_run_{name}", table, ["run_id", *columns], f"run_id IS NOT NULL{extra}"
        )
    for table in RUN_INDEXED:
        _run_index(table)
    _partial(
        "ix_trades_scope_exit_time",
        "trades",
        ["bot", "mode", "exit_time"],
        "exit_time IS NOT NULL",
        unique=False,
    )
    _create_bot_state()
    _create_pair_locks()
    if dialect == "sqlite":  # the batch rebuilt these tables, and their triggers went with them
        for table, column in TOUCHED.items():
            _touch_trigger(dialect, table, column)
    _touch_trigger(dialect, "bot_state", "updated_at")
    _create_views(dialect, scoped=True)
    if dialect == "postgresql":
        op.execute(DELETE_RUN)
        op.execute("REVOKE EXECUTE ON FUNCTION public.iftb_delete_backtest_run(bigint) FROM PUBLIC")
        op.execute(STATE_DELETERS)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    _refuse_other_scopes()
    if dialect == "postgresql":
        op.execute("DROP FUNCTION public.iftb_delete_backtest_run(bigint)")
    _drop_views()
    op.drop_table("pair_locks")
    if dialect == "postgresql":
        op.execute("DROP TRIGGER bot_state_touch ON bot_state")
        op.execute("DROP FUNCTION bot_state_touch()")
    op.drop_table("bot_state")
    op.drop_index("ix_trades_scope_exit_time", "trades")
    for table in RUN_INDEXED:
        op.drop_index(f"ix_{table}_run_id", table)
    for table, name, _columns, _where in SCOPED_UNIQUE:
        op.drop_index(f"uq_{table}_scope_{name}", table)
        op.drop_index(f"uq_{table}_run_{name}", table)
    for table in JOURNAL:
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.drop_constraint(op.f(f"fk_{table}_run_id_backtest_runs"), type_="foreignkey")
            batch.drop_constraint(op.f(f"ck_{table}_run_scope"), type_="check")
            batch.drop_constraint(op.f(f"ck_{table}_mode"), type_="check")
            batch.drop_column("run_id")
            batch.drop_column("mode")
            batch.drop_column("bot")
            if table == "trades":
                batch.create_unique_constraint(op.f("uq_trades_trade_id"), ["trade_id"])
            if table == "daily_performance":
                batch.create_unique_constraint(
                    op.f("uq_daily_performance_date_exchange"), ["date", "exchange"]
                )
    op.create_index(
        "uq_positions_open_symbol_exchange_side",
        "positions",
        ["symbol", "exchange", "side"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
    _partial("ix_trades_exit_time", "trades", ["exit_time"], "exit_time IS NOT NULL", unique=False)
    op.drop_table("backtest_runs")
    if dialect == "sqlite":
        for table, column in TOUCHED.items():
            _touch_trigger(dialect, table, column)
    _create_views(dialect, scoped=False)


def _refuse_other_scopes() -> None:
    counted = " UNION ALL ".join(
        f"SELECT count(*) AS n FROM {table} WHERE bot <> 'default' OR mode <> 'live'"
        for table in JOURNAL
    )
    others = op.get_bind().execute(sa.text(f"SELECT sum(n) FROM ({counted}) AS scoped")).scalar()
    if others:
        raise ConflictError(
            f"{others} journal rows belong to scopes other than default/live (other bots, paper "
            "or backtests); before 0006 there was one scope, so downgrading would merge them: "
            "export and delete them first"
        )


def _create_backtest_runs() -> None:
    op.create_table(
        "backtest_runs",
        sa.Column("id", Id, sa.Identity(always=False), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=utcnow(), nullable=False),
        sa.Column("bot", sa.String(50), nullable=False),
        sa.Column("strategy", sa.String(100), nullable=False),
        sa.Column("strategy_version", sa.String(50), nullable=True),
        sa.Column("timeframe", sa.String(10), nullable=False),
        sa.Column("data_start", UTCDateTime(), nullable=False),
        sa.Column("data_end", UTCDateTime(), nullable=False),
        sa.Column("config", JSONDocument, nullable=True),
        sa.Column("status", sa.String(20), server_default=sa.text("'running'"), nullable=False),
        sa.Column("started_at", UTCDateTime(), server_default=utcnow(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("summary", JSONDocument, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed')", name=op.f("ck_backtest_runs_status")
        ),
        sa.CheckConstraint("data_end >= data_start", name=op.f("ck_backtest_runs_data_window")),
        sa.PrimaryKeyConstraint("id", name="pk_backtest_runs"),
    )
    op.create_index(
        "ix_backtest_runs_bot_strategy_started_at",
        "backtest_runs",
        ["bot", "strategy", "started_at"],
    )


def _scope_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("bot", sa.String(50), server_default="default", nullable=False),
        sa.Column("mode", sa.String(10), server_default="live", nullable=False),
        sa.Column(
            "run_id", Id, sa.ForeignKey("backtest_runs.id", ondelete="CASCADE"), nullable=True
        ),
    ]


def _create_bot_state() -> None:
    table = "bot_state"
    op.create_table(
        table,
        sa.Column("id", Id, sa.Identity(always=False), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=utcnow(), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value_type", sa.String(10), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=utcnow(), nullable=True),
        *_scope_columns(),
        sa.CheckConstraint(
            "value_type IN ('str', 'int', 'decimal', 'datetime', 'json')",
            name=op.f("ck_bot_state_value_type"),
        ),
        *_scope_checks(table),
        sa.PrimaryKeyConstraint("id", name="pk_bot_state"),
    )
    _partial("uq_bot_state_scope_key", table, ["bot", "mode", "key"], "run_id IS NULL")
    _partial("uq_bot_state_run_key", table, ["run_id", "key"], "run_id IS NOT NULL")


def _create_pair_locks() -> None:
    table = "pair_locks"
    op.create_table(
        table,
        sa.Column("id", Id, sa.Identity(always=False), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=utcnow(), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("side", sa.String(10), server_default=sa.text("'*'"), nullable=False),
        sa.Column("lock_time", UTCDateTime(), server_default=utcnow(), nullable=False),
        sa.Column("lock_end_time", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_scope_columns(),
        sa.CheckConstraint("side IN ('long', 'short', '*')", name=op.f("ck_pair_locks_side")),
        sa.CheckConstraint("lock_end_time > lock_time", name=op.f("ck_pair_locks_lock_window")),
        *_scope_checks(table),
        sa.PrimaryKeyConstraint("id", name="pk_pair_locks"),
    )
    _run_index(table)
    _partial(
        "ix_pair_locks_scope_active",
        table,
        ["bot", "mode", "lock_end_time"],
        "active",
        unique=False,
    )


def _scope_checks(table: str) -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint(MODES, name=op.f(f"ck_{table}_mode")),
        sa.CheckConstraint(RUN_SCOPE, name=op.f(f"ck_{table}_run_scope")),
    ]


def _run_index(table: str) -> None:
    _partial(f"ix_{table}_run_id", table, ["run_id"], "run_id IS NOT NULL", unique=False)


def _partial(name: str, table: str, columns: list[str], where: str, *, unique: bool = True) -> None:
    op.create_index(
        name,
        table,
        columns,
        unique=unique,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def _touch_trigger(dialect: str, table: str, column: str) -> None:
    """``column`` follows every update, as 0001's triggers do."""
    if dialect == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n    NEW.{column} := statement_timestamp();\n    RETURN NEW;\nEND $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_touch()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER {table}_touch AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN NEW.{column} IS OLD.{column} "
            f"BEGIN UPDATE {table} SET {column} = {SQLITE_NOW} WHERE id = NEW.id; END"
        )


def _drop_views() -> None:
    op.execute("DROP VIEW v_active_positions")
    op.execute("DROP VIEW v_recent_trades")


# Whole minutes between two UTC timestamps, rounded half up from exact microseconds (as 0003).
MINUTES = {
    "postgresql": "CAST(round(EXTRACT(EPOCH FROM ({end} - {start})) / 60) AS INTEGER)",
    "sqlite": "(({end_us} - {start_us} + 30000000) / 60000000)",
}
VIEW_NOW = {"postgresql": "statement_timestamp()", "sqlite": SQLITE_NOW}
SAME_RUN = {"postgresql": "IS NOT DISTINCT FROM", "sqlite": "IS"}


def _create_views(dialect: str, *, scoped: bool) -> None:
    """0003's views; ``scoped``, they show each row's scope and join within it."""

    def whole_minutes(start: str, end: str) -> str:
        return MINUTES[dialect].format(
            start=start, end=end, start_us=_epoch_us(start), end_us=_epoch_us(end)
        )

    held = whole_minutes("p.entry_time", VIEW_NOW[dialect])
    duration = whole_minutes("t.entry_time", "t.exit_time")
    p_scope = "p.bot, p.mode, p.run_id, " if scoped else ""
    t_scope = "t.bot, t.mode, t.run_id, " if scoped else ""
    same_scope = (
        f" AND t.bot = p.bot AND t.mode = p.mode AND t.run_id {SAME_RUN[dialect]} p.run_id"
        if scoped
        else ""
    )
    op.execute(
        "CREATE VIEW v_active_positions AS "
        "SELECT p.id, p.symbol, p.exchange, p.side, p.entry_price, p.quantity, p.leverage, "
        "p.margin, p.current_price, p.unrealized_pnl, p.unrealized_pnl_pct, "
        "p.liquidation_price, p.stop_loss, p.take_profit, p.trailing_stop, p.trade_id, "
        f"p.entry_time, p.last_updated, {p_scope}t.signal_score, t.technical_score, "
        f"t.llm_score, t.xgb_confidence, {held} AS minutes_held "
        f"FROM positions p LEFT JOIN trades t ON t.trade_id = p.trade_id{same_scope} "
        "WHERE p.status = 'open'"
    )
    op.execute(
        "CREATE VIEW v_recent_trades AS "
        "SELECT t.id, t.trade_id, t.symbol, t.exchange, t.side, t.action, t.entry_price, "
        "t.exit_price, t.quantity, t.leverage, t.realized_pnl, t.realized_pnl_pct, t.fee, "
        f"t.entry_time, t.exit_time, {t_scope}{duration} AS duration_minutes "
        "FROM trades t WHERE t.action <> 'open' AND t.exit_time IS NOT NULL "
        "ORDER BY t.exit_time DESC LIMIT 100"
    )


def _epoch_us(column: str) -> str:
    """Exact microseconds since the epoch of SQLite's fixed-width UTC text."""
    return (
        f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000 "
        f"+ CAST(substr({column}, 21, 6) AS INTEGER))"
    )
