-- Reference PostgreSQL DDL of migration 0012: the journal's scope registry. One row per scope
-- (bot, mode, run_key: 0 outside backtests) that has journal rows, and its trades' revision,
-- moved forward by every insert, update or delete of its trades. The database's triggers keep
-- it, for every writer; only the owner writes it. Apply after 011_trade_listing_indexes.sql;
-- tests/test_migrations.py proves that the files build the same schema as `iftb-db upgrade`
-- (pg_dump --schema-only). On a database that already holds a journal, the migration itself
-- registers its scopes; by hand, run the INSERT ... SELECT DISTINCT of each journal table that
-- the migration runs.

BEGIN;

CREATE TABLE journal_scopes (
    bot VARCHAR(50) NOT NULL,
    mode VARCHAR(10) NOT NULL,
    run_key BIGINT NOT NULL,
    trades_revision BIGINT DEFAULT 0 NOT NULL,
    CONSTRAINT pk_journal_scopes PRIMARY KEY (bot, mode, run_key)
);

CREATE FUNCTION public.iftb_register_scopes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.journal_scopes AS registered (bot, mode, run_key, trades_revision)
    SELECT DISTINCT changed_rows.bot, changed_rows.mode,
           coalesce(changed_rows.run_id, 0), 0
    FROM changed_rows
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

REVOKE ALL ON FUNCTION public.iftb_register_scopes() FROM PUBLIC;

CREATE FUNCTION public.iftb_revise_trade_scopes() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.journal_scopes AS registered (bot, mode, run_key, trades_revision)
    SELECT DISTINCT changed_rows.bot, changed_rows.mode,
           coalesce(changed_rows.run_id, 0), 1
    FROM changed_rows
    ON CONFLICT (bot, mode, run_key)
    DO UPDATE SET trades_revision = registered.trades_revision + 1;
    RETURN NULL;
END $$;

REVOKE ALL ON FUNCTION public.iftb_revise_trade_scopes() FROM PUBLIC;

CREATE TRIGGER trades_insert_scope AFTER INSERT ON public.trades REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_revise_trade_scopes();

CREATE TRIGGER trades_update_scope AFTER UPDATE ON public.trades REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_revise_trade_scopes();

CREATE TRIGGER trades_delete_scope AFTER DELETE ON public.trades REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_revise_trade_scopes();

CREATE TRIGGER positions_insert_scope AFTER INSERT ON public.positions REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_register_scopes();

CREATE TRIGGER daily_performance_insert_scope AFTER INSERT ON public.daily_performance REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_register_scopes();

CREATE TRIGGER system_events_insert_scope AFTER INSERT ON public.system_events REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_register_scopes();

CREATE TRIGGER llm_analysis_log_insert_scope AFTER INSERT ON public.llm_analysis_log REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_register_scopes();

CREATE TRIGGER bot_state_insert_scope AFTER INSERT ON public.bot_state REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_register_scopes();

CREATE TRIGGER pair_locks_insert_scope AFTER INSERT ON public.pair_locks REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.iftb_register_scopes();

-- Only the owner writes the registry; the triggers' functions run as the owner.
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
END $$;


COMMIT;
