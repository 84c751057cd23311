-- Reference PostgreSQL DDL of migration 0014: a row's scope is fixed when it is written (for
-- every role but the table's owner), and the scope registry's SECURITY DEFINER trigger functions
-- act only as the triggers of the journal tables, with EXECUTE left to the owner alone. Apply
-- after 013_fill_sequence_and_funding_reported_time.sql; tests/test_migrations.py proves that the
-- files build the same schema as `iftb-db upgrade` (pg_dump --schema-only).

BEGIN;

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
END $$;

REVOKE ALL ON FUNCTION public.iftb_keep_scope() FROM PUBLIC;

CREATE TRIGGER trades_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.trades FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER positions_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.positions FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER daily_performance_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.daily_performance FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER system_events_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.system_events FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER llm_analysis_log_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.llm_analysis_log FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER bot_state_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.bot_state FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER pair_locks_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.pair_locks FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER orders_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.orders FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER fills_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.fills FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE TRIGGER funding_payments_keep_scope BEFORE UPDATE OF bot, mode, run_id ON public.funding_payments FOR EACH ROW EXECUTE FUNCTION public.iftb_keep_scope();

CREATE OR REPLACE FUNCTION public.iftb_register_scopes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_SCHEMA <> 'public' OR TG_TABLE_NAME NOT IN ('positions', 'daily_performance', 'system_events', 'llm_analysis_log', 'bot_state', 'pair_locks')
       OR TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION '% runs only as the scope trigger of the journal tables, not on %.%',
            TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO public.journal_scopes AS registered (bot, mode, run_key, trades_revision)
    SELECT DISTINCT changed_rows.bot, changed_rows.mode,
           coalesce(changed_rows.run_id, 0), 0
    FROM changed_rows
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION public.iftb_revise_trade_scopes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_SCHEMA <> 'public' OR TG_TABLE_NAME NOT IN ('trades')
       OR TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' THEN
        RAISE EXCEPTION '% runs only as the scope trigger of the journal tables, not on %.%',
            TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO public.journal_scopes AS registered (bot, mode, run_key, trades_revision)
    SELECT DISTINCT changed_rows.bot, changed_rows.mode,
           coalesce(changed_rows.run_id, 0), 1
    FROM changed_rows
    ON CONFLICT (bot, mode, run_key)
    DO UPDATE SET trades_revision = registered.trades_revision + 1;
    RETURN NULL;
END $$;

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
END $$;

COMMIT;
