"""A row's scope is fixed when it is written; the registry's trigger functions act only as the
triggers they were made for.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

The bot role may update journal rows, so it could relabel live history as a backtest run of its
own (``bot``, ``mode``, ``run_id``: the CHECK holds) and then delete that "run" through
``iftb_delete_backtest_run``: live trades, positions and daily rows gone. Now a BEFORE UPDATE
trigger on every scoped table refuses a change of scope by any role but the table's owner, so
the rows of a run are exactly the rows written as that run. And ``iftb_register_scopes`` /
``iftb_revise_trade_scopes`` (SECURITY DEFINER, migration 0012) could be attached by the bot to
a temporary table of its own, writing forged rows into the registry as the owner: they now
refuse to act for any table but the journal tables they were made for, and the bot no longer
holds EXECUTE on them (a trigger fires without it). PostgreSQL only: SQLite has no roles.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPED = (
    "trades",
    "positions",
    "daily_performance",
    "system_events",
    "llm_analysis_log",
    "bot_state",
    "pair_locks",
    "orders",
    "fills",
    "funding_payments",
)
"""Every table whose rows carry a scope (``bot``, ``mode``, ``run_id``)."""

KEEP_SCOPE = """
CREATE FUNCTION public.iftb_keep_scope() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (NEW.bot, NEW.mode, NEW.run_id) IS DISTINCT FROM (OLD.bot, OLD.mode, OLD.run_id)
       AND NOT pg_catalog.pg_has_role(
           current_user,
           (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID),
           'USAGE') THEN
        RAISE EXCEPTION 'a row''s scope is fixed when it is written: % row % cannot move from '
            '%/%/% to %/%/%', TG_TABLE_NAME, OLD.id, OLD.bot, OLD.mode,
            coalesce(OLD.run_id::text, '-'), NEW.bot, NEW.mode, coalesce(NEW.run_id::text, '-')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$"""

REGISTRY = """
CREATE OR REPLACE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN{guard}
    INSERT INTO public.journal_scopes AS registered (bot, mode, run_key, trades_revision)
    SELECT DISTINCT changed_rows.bot, changed_rows.mode,
           coalesce(changed_rows.run_id, 0), {revision}
    FROM changed_rows
    {conflict};
    RETURN NULL;
END $$"""
GUARD = """
    IF TG_TABLE_SCHEMA <> 'public' OR TG_TABLE_NAME NOT IN ({tables})
       OR TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION '% runs only as the scope trigger of the journal tables, not on %.%',
            TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;"""
REGISTERING = ("positions", "daily_performance", "system_events", "llm_analysis_log",
               "bot_state", "pair_locks")  # fmt: skip
FUNCTIONS = {  # name: (revision of a new scope, conflict clause, the tables it serves)
    "iftb_register_scopes": (0, "ON CONFLICT DO NOTHING", REGISTERING),
    "iftb_revise_trade_scopes": (
        1,
        "ON CONFLICT (bot, mode, run_key)\n"
        "    DO UPDATE SET trades_revision = registered.trades_revision + 1",
        ("trades",),
    ),
}
# Triggers need no EXECUTE to fire: only the owner keeps it on the trigger functions.
OWNER_ONLY = """
DO $$
DECLARE
    granted record;
BEGIN
    FOR granted IN
        SELECT DISTINCT p.oid::pg_catalog.regprocedure::text AS function,
               a.grantee::pg_catalog.regrole::text AS grantee
        FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        WHERE p.pronamespace = 'public'::pg_catalog.regnamespace
          AND p.proname IN ('iftb_keep_scope', 'iftb_register_scopes', 'iftb_revise_trade_scopes')
          AND a.grantee NOT IN (0, p.proowner)
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s',
                                  granted.function, granted.grantee);
    END LOOP;
END $$"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(KEEP_SCOPE)
    op.execute("REVOKE ALL ON FUNCTION public.iftb_keep_scope() FROM PUBLIC")
    for table in SCOPED:
        op.execute(
            f"CREATE TRIGGER {table}_keep_scope BEFORE UPDATE OF bot, mode, run_id"
            f" ON public.{table} FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope()"
        )
    for name, (revision_, conflict, tables) in FUNCTIONS.items():
        guard = GUARD.format(tables=", ".join(f"'{table}'" for table in tables))
        op.execute(REGISTRY.format(name=name, guard=guard, revision=revision_, conflict=conflict))
    op.execute(OWNER_ONLY)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name, (revision_, conflict, _tables) in FUNCTIONS.items():
        op.execute(REGISTRY.format(name=name, guard="", revision=revision_, conflict=conflict))
    for table in SCOPED:
        op.execute(f"DROP TRIGGER {table}_keep_scope ON public.{table}")
    op.execute("DROP FUNCTION public.iftb_keep_scope()")
