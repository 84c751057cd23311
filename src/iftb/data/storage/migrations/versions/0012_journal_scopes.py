"""The journal's scope registry: every scope with journal rows, and its trades' revision.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

Listing scopes read the scope columns of every journal row (a union over seven tables: 112 ms
p50 on PostgreSQL, 155 ms on SQLite beside 100k trades), and a reader had no exact way to know
whether a scope's statistics changed without recomputing them. ``journal_scopes`` holds one row
per scope; the database's own triggers keep it, so no writer, the library's or another, can leave
it behind: an insert into any journal table registers its scope, and every insert, update or
delete of trades moves the scope's ``trades_revision`` forward in the writer's transaction.
PostgreSQL runs one statement per write statement (transition tables); SQLite, a statement per
row. Rows are never deleted (a run's deleted trades move its revision too), so a revision never
repeats. On PostgreSQL only the owner writes the registry; the triggers' functions run as the
owner (SECURITY DEFINER, trusted search_path).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REGISTERING = (
    "positions",
    "daily_performance",
    "system_events",
    "llm_analysis_log",
    "bot_state",
    "pair_locks",
)
"""Journal tables whose inserts register their scope; ``trades`` also revises it."""
TRADE_EVENTS = {"insert": "NEW", "update": "NEW", "delete": "OLD"}
"""Trades' events, each with the rows its trigger sees: the written ones, or the deleted."""

_REGISTER, _REVISE = "iftb_register_scopes", "iftb_revise_trade_scopes"
_FUNCTIONS = {  # the revision a new scope starts at, and what a known scope's row gets
    _REGISTER: (0, "ON CONFLICT DO NOTHING"),
    _REVISE: (
        1,
        "ON CONFLICT (bot, mode, run_key)\n"
        "    DO UPDATE SET trades_revision = registered.trades_revision + 1",
    ),
}
_SQLITE_CONFLICTS = {  # the same on SQLite, which names no alias in INSERT
    _REGISTER: "ON CONFLICT DO NOTHING",
    _REVISE: "ON CONFLICT DO UPDATE SET trades_revision = trades_revision + 1",
}
_PG_FUNCTION = """
CREATE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.journal_scopes AS registered (bot, mode, run_key, trades_revision)
    SELECT DISTINCT changed_rows.bot, changed_rows.mode,
           coalesce(changed_rows.run_id, 0), {revision}
    FROM changed_rows
    {conflict};
    RETURN NULL;
END $$"""
# Only the owner writes the registry: the grants the owner's default privileges gave are taken
# back (the triggers' functions run as the owner).
_OWNER_ONLY = """
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::pg_catalog.regrole::text
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = 'public.journal_scopes'::pg_catalog.regclass
          AND a.privilege_type <> 'SELECT' AND a.grantee NOT IN (0, c.relowner)
    LOOP
        EXECUTE pg_catalog.format(
            'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.journal_scopes FROM %s', grantee);
    END LOOP;
END $$"""


def upgrade() -> None:
    op.create_table(
        "journal_scopes",
        sa.Column("bot", sa.String(50), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("run_key", sa.BigInteger(), nullable=False),
        sa.Column("trades_revision", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("bot", "mode", "run_key", name="pk_journal_scopes"),
    )
    for table in ("trades", *REGISTERING):
        revision, _conflict = _FUNCTIONS[_function(table)]
        op.execute(
            "INSERT INTO journal_scopes (bot, mode, run_key, trades_revision)"
            f" SELECT DISTINCT bot, mode, coalesce(run_id, 0), {revision} FROM {table}"
            " WHERE true ON CONFLICT DO NOTHING"
        )
    if op.get_context().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    for table, event in _triggers():
        op.execute(f"DROP TRIGGER {table}_{event}_scope" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        for name in _FUNCTIONS:
            op.execute(f"DROP FUNCTION public.{name}()")
    op.drop_table("journal_scopes")


def _function(table: str) -> str:
    """What a write to ``table`` does to its scope's row: trades revise it, the rest register."""
    return _REVISE if table == "trades" else _REGISTER


def _triggers() -> list[tuple[str, str]]:
    """(table, event) of every trigger: trades' three events, the other tables' inserts."""
    return [("trades", event) for event in TRADE_EVENTS] + [
        (table, "insert") for table in REGISTERING
    ]


def _postgresql_triggers() -> None:
    for name, (revision, conflict) in _FUNCTIONS.items():
        op.execute(_PG_FUNCTION.format(name=name, revision=revision, conflict=conflict))
        op.execute(f"REVOKE ALL ON FUNCTION public.{name}() FROM PUBLIC")
    for table, event in _triggers():
        op.execute(
            f"CREATE TRIGGER {table}_{event}_scope AFTER {event.upper()} ON public.{table}"
            f" REFERENCING {TRADE_EVENTS[event]} TABLE AS changed_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION public.{_function(table)}()"
        )
    op.execute(_OWNER_ONLY)


def _sqlite_triggers() -> None:
    for table, event in _triggers():
        row, function = TRADE_EVENTS[event], _function(table)
        revision, _conflict = _FUNCTIONS[function]
        op.execute(
            f"CREATE TRIGGER {table}_{event}_scope AFTER {event.upper()} ON {table} FOR EACH ROW"
            " BEGIN INSERT INTO journal_scopes (bot, mode, run_key, trades_revision)"
            f" VALUES ({row}.bot, {row}.mode, coalesce({row}.run_id, 0),"
            f" {revision}) {_SQLITE_CONFLICTS[function]}; END"
        )
