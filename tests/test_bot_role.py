"""The bot's PostgreSQL role, deployed as operators do (``migrations/least_privilege_roles.sql``,
then ``iftb-db upgrade`` as the owner): it cannot turn the SECURITY DEFINER partition functions
against other tables, cannot delete or rewrite history, and still does all of its own work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from iftb.data.candle_import import import_candle_file
from iftb.data.storage import (
    BacktestRunRepository,
    ClusterError,
    DailyPerformanceRepository,
    DatabaseManager,
    Fill,
    FundingPayment,
    LLMAnalysisLog,
    LLMAnalysisLogRepository,
    OHLCVBar,
    OHLCVRepository,
    Order,
    PositionRepository,
    Scope,
    ScopeRepository,
    StorageError,
    SystemEventRepository,
    TradeRepository,
)
from tests.conftest import distribute_on_citus, scratch_postgres_database
from tests.factories import T0, make_position, make_trade
from tests.support.pg_cluster import PostgresServer, run_psql

pytestmark = pytest.mark.postgres_only

ROLES_SQL = Path(__file__).parents[1] / "migrations" / "least_privilege_roles.sql"
PASSWORDS = {"owner_password": "owner-pw-1", "bot_password": "bot-pw-2"}
TABLES = (
    "ohlcv",
    "trades",
    "positions",
    "daily_performance",
    "system_events",
    "llm_analysis_log",
    "alembic_version",
    "journal_scopes",
)


async def fake_pg_inherits(connection: asyncpg.Connection, kind: str, target: str) -> None:
    """The attack: a ``pg_inherits`` in the bot's temporary schema that claims ``target`` is a
    partition of ``ohlcv`` (plain OIDs, so that dropping ``target`` is not blocked by the fake
    depending on it), readable by the functions' owner."""
    oids = await connection.fetchrow(
        "SELECT $1::regclass::oid AS target, 'public.ohlcv'::regclass::oid AS ohlcv", target
    )
    await connection.execute(
        f"CREATE TEMP {kind} pg_inherits AS SELECT {oids['target']}::oid AS inhrelid, "
        f"{oids['ohlcv']}::oid AS inhparent, 1 AS inhseqno, false AS inhdetachpending"
    )
    await connection.execute("GRANT SELECT ON pg_temp.pg_inherits TO iftb_owner")


@dataclass(frozen=True)
class Deployment:
    server: PostgresServer
    database: str

    def url(self, role: str, driver: str = "asyncpg") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        password = PASSWORDS[f"{role.removeprefix('iftb_')}_password"]
        host = f"{self.server.host}:{self.server.port}"
        return f"{scheme}://{role}:{password}@{host}/{self.database}"

    async def connect(self, role: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.url(role, driver=""))


# What the roles script granted by default before revision 0004: DELETE on every new table.
DEFAULTS_NOW = "GRANT SELECT, INSERT, UPDATE ON TABLES TO iftb_bot"
DEFAULTS_BEFORE_0004 = "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO iftb_bot"


@pytest.fixture(scope="module", params=["fresh", "deployed before 0004"])
async def deployment(
    request: pytest.FixtureRequest, postgres_server: PostgresServer | None
) -> AsyncIterator[Deployment]:
    """A database with the roles made by the real script and migrated by the owner: a fresh
    deployment, or one made with the script as it was before 0004 and migrated to 0003 first.
    Tests that change it undo what they did (see ``as_bot``)."""
    if postgres_server is None:
        pytest.skip("PostgreSQL unavailable")
    script = ROLES_SQL.read_text()
    if request.param != "fresh":
        assert DEFAULTS_NOW in script
        script = script.replace(DEFAULTS_NOW, DEFAULTS_BEFORE_0004)
    try:
        async with scratch_postgres_database(postgres_server) as database:
            run_psql(postgres_server, database, script, variables=PASSWORDS)
            deployed = Deployment(postgres_server, database)
            owner = DatabaseManager(deployed.url("iftb_owner"))
            if request.param != "fresh":
                await owner.migrate("0003")
            await owner.migrate()
            await owner.disconnect()
            await distribute_on_citus(postgres_server, database)
            yield deployed
    finally:
        admin = await asyncpg.connect(postgres_server.url(driver=""))
        try:
            await admin.execute("DROP ROLE IF EXISTS iftb_bot")
            await admin.execute("DROP ROLE IF EXISTS iftb_owner")
        finally:
            await admin.close()


@pytest.fixture
async def bot(deployment: Deployment) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(deployment.url("iftb_bot"))
    async with manager:
        yield manager


@pytest.fixture
async def as_bot(deployment: Deployment) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the bot inside a transaction that is rolled back afterwards, so what an
    attack or a forbidden statement did is seen by the test and then undone."""
    connection = await deployment.connect("iftb_bot")
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield connection
    finally:
        await transaction.rollback()
        await connection.close()


async def tables(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch(
        "SELECT relname FROM pg_catalog.pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind IN ('r', 'p') AND NOT relispartition"
    )
    return {row["relname"] for row in rows}


def bar(at: datetime, symbol: str = "BTCUSDT") -> OHLCVBar:
    one = Decimal(1)
    return OHLCVBar(symbol, "binance", "1h", at, one, one, one, one, one)


# --- item 1: the partition functions cannot be turned against other tables --------------------


@pytest.mark.parametrize("kind", ["VIEW", "TABLE"])
@pytest.mark.parametrize(
    "target", ["llm_analysis_log", "system_events", "alembic_version", "ohlcv"]
)
async def test_a_fake_pg_inherits_in_the_bots_temp_schema_drops_nothing(
    as_bot: asyncpg.Connection, kind: str, target: str
) -> None:
    await fake_pg_inherits(as_bot, kind, target)
    try:
        async with as_bot.transaction():  # a savepoint: a refusal is as good as ignoring the fake
            await as_bot.fetchval("SELECT iftb_drop_ohlcv_partitions('1900-01-01', '1900-12-31')")
    except asyncpg.PostgresError:
        pass
    assert set(TABLES) <= await tables(as_bot)


async def test_a_fake_pg_inherits_does_not_steer_partition_creation_or_retention(
    as_bot: asyncpg.Connection,
) -> None:
    await fake_pg_inherits(as_bot, "VIEW", "system_events")
    await as_bot.execute("CREATE TEMP TABLE ohlcv (LIKE public.ohlcv)")
    created = await as_bot.fetchval(
        "SELECT iftb_ensure_ohlcv_partitions(ARRAY[timestamptz '1971-02-03 04:00Z'])"
    )
    assert await as_bot.fetchval("SELECT to_regclass('public.ohlcv_p19710201')") is not None
    dropped = await as_bot.fetchval("SELECT iftb_drop_ohlcv_partitions('1971-02-01', '1971-03-01')")
    assert (created, dropped) == (1, 0)  # the real (empty) partition, created then dropped
    assert await as_bot.fetchval("SELECT to_regclass('public.ohlcv_p19710201')") is None
    assert set(TABLES) <= await tables(as_bot)


# --- item 2: what the bot may not do --------------------------------------------------------

FORBIDDEN = [
    *(f"DELETE FROM {table}" for table in TABLES[1:]),
    "INSERT INTO alembic_version VALUES ('9999')",
    "UPDATE alembic_version SET version_num = '0001'",
    "UPDATE system_events SET message = ''",  # rewriting the audit log erases it as well
    "UPDATE llm_analysis_log SET error_message = NULL",
    # the scope registry is the triggers' alone: a forged revision would keep stale statistics
    "UPDATE journal_scopes SET trades_revision = 0",
    "INSERT INTO journal_scopes VALUES ('intruder', 'live', 0, 0)",
    *(f"TRUNCATE {table}" for table in TABLES),
    "DELETE FROM backtest_runs",  # only through iftb_delete_backtest_run: backtest rows only
    "DELETE FROM pair_locks",  # a lock ends by unlock(), and stays as history
    "DROP TABLE trades",
    "DROP TABLE ohlcv",
    "ALTER TABLE trades ADD COLUMN intruder int",
    "CREATE TABLE intruder (id int)",
]


@pytest.mark.parametrize("statement", FORBIDDEN)
async def test_the_bot_is_refused(as_bot: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_bot.execute(statement)


async def test_a_table_the_owner_creates_later_gives_the_bot_no_delete(
    deployment: Deployment,
) -> None:
    owner = await deployment.connect("iftb_owner")
    try:
        transaction = owner.transaction()
        await transaction.start()
        try:
            await owner.execute("CREATE TABLE public.orders_to_come (id int)")
            rights = await owner.fetchrow(
                "SELECT has_table_privilege('iftb_bot', 'public.orders_to_come', 'INSERT') AS ins, "
                "has_table_privilege('iftb_bot', 'public.orders_to_come', 'DELETE') AS del"
            )
        finally:
            await transaction.rollback()
    finally:
        await owner.close()
    assert (rights["ins"], rights["del"]) == (True, False)


@pytest.mark.parametrize("repository", [SystemEventRepository, LLMAnalysisLogRepository])
async def test_audit_retention_as_the_bot_is_a_permission_error(
    bot: DatabaseManager, repository: type[SystemEventRepository | LLMAnalysisLogRepository]
) -> None:
    with pytest.raises(StorageError, match="permission denied for table"):
        async with bot.get_session() as session:
            await repository(session).purge(datetime.now(UTC))


@pytest.mark.parametrize("repository", [SystemEventRepository, LLMAnalysisLogRepository])
async def test_audit_retention_runs_as_the_owner(
    deployment: Deployment, repository: type[SystemEventRepository | LLMAnalysisLogRepository]
) -> None:
    async with (
        DatabaseManager(deployment.url("iftb_owner")) as owner,
        owner.get_session() as session,
    ):
        assert await repository(session).purge(datetime(2000, 1, 1, tzinfo=UTC)) == 0


# --- item 2: what the bot still does --------------------------------------------------------


async def test_the_bot_writes_candles_into_a_new_month_and_applies_candle_retention(
    bot: DatabaseManager,
) -> None:
    march = datetime(2011, 3, 1, tzinfo=UTC)
    async with bot.get_session() as session:
        assert await OHLCVRepository(session).insert_many([bar(march)]) == 1
    async with bot.get_session() as session:
        repo = OHLCVRepository(session)
        assert await repo.upsert_many([bar(march), bar(march + timedelta(days=31))]) == 2
        assert await repo.upsert_many([bar(march, symbol="ETHUSDT")]) == 1
    async with bot.get_session() as session:
        repo = OHLCVRepository(session)
        # April holds BTC only: dropped whole by the function; March is shared: rows deleted
        assert await repo.delete_range("BTCUSDT", "1h", march, march + timedelta(days=62)) == 2
        names = {p.name for p in await repo.get_partitions()}
        assert "ohlcv_p20110301" in names and "ohlcv_p20110401" not in names
        assert await repo.purge(march + timedelta(days=1)) == 1


async def test_the_bot_imports_a_file_reaching_into_months_without_partitions(
    bot: DatabaseManager, tmp_path: Path
) -> None:
    """An import counts what it added from the candle catalog, not by reading the candles
    first, so each chunk's new months are made in a transaction of their own (on Citus the bot
    may not make one after reading the candles)."""
    first = datetime(2013, 1, 31, 20, tzinfo=UTC)
    rows = [
        f"{int((first + timedelta(hours=n)).timestamp() * 1000)},1,2,0.5,1.5,10\n" for n in range(8)
    ]
    path = tmp_path / "BTCUSDT-1h.csv"
    path.write_text("".join(rows))
    summary = await import_candle_file(bot, path, "BTCUSDT", "1h", chunk_size=3)
    assert (summary.rows, summary.inserted, summary.updated) == (8, 8, 0)
    again = await import_candle_file(bot, path, "BTCUSDT", "1h", chunk_size=3)
    assert (again.inserted, again.updated) == (0, 8)


@pytest.mark.citus_only
async def test_on_citus_the_bot_is_told_to_create_months_ahead_when_a_unit_needs_one_late(
    bot: DatabaseManager,
) -> None:
    """Having written candles, a unit of work cannot have a new month made beside it (a
    transaction of its own would wait for its locks), nor make one itself as the bot."""
    march = datetime(2012, 3, 1, tzinfo=UTC)
    with pytest.raises(ClusterError, match=r"partitions --ahead"):
        async with bot.get_session() as session:
            repo = OHLCVRepository(session)
            await repo.insert_many([bar(march)])
            await repo.insert_many([bar(march + timedelta(days=31))])
    async with bot.get_session(read_only=True) as session:
        assert (
            await OHLCVRepository(session).count_range(
                "BTCUSDT", "1h", march, march + timedelta(days=62)
            )
            == 0
        )


async def test_the_bot_opens_updates_and_closes_trades_and_positions(
    bot: DatabaseManager,
) -> None:
    async with bot.get_session() as session:
        trades, positions = TradeRepository(session), PositionRepository(session)
        trade_id = await trades.insert(make_trade(trade_id="bot-role-trade"))
        await trades.update(trade_id, stop_loss=Decimal(39000))
        closed = await trades.close_trade(
            "bot-role-trade", Decimal(41000), datetime(2024, 1, 2, tzinfo=UTC)
        )
        position = await positions.update_position(make_position(symbol="ETHUSDT"))
        assert position.id is not None
        await positions.mark_to_market("ETHUSDT", Decimal(41000))
        final = await positions.close_position(position.id)
    assert closed.action == "close" and final.status == "closed"


async def test_the_bots_writes_register_its_scopes_and_move_their_revision(
    bot: DatabaseManager,
) -> None:
    scope = Scope("registry-probe", "paper")
    async with bot.get_session() as session:
        before = await ScopeRepository(session).trades_revision(scope)
    async with bot.scope(scope.bot, scope.mode).session() as journal:
        await journal.trades.insert(make_trade(trade_id="registry-probe"))
    async with bot.get_session() as session:
        assert await ScopeRepository(session).trades_revision(scope) > before
        listed = {summary.scope for summary in await ScopeRepository(session).list_scopes()}
    assert scope in listed


async def test_the_bot_writes_the_daily_rollup_and_the_audit_logs(bot: DatabaseManager) -> None:
    async with bot.get_session() as session:
        daily = DailyPerformanceRepository(session)
        day = date(2024, 1, 5)
        await daily.rollup(day, starting_balance=Decimal(1000))
        again = await daily.rollup(day, starting_balance=Decimal(1000))  # an update now
        await SystemEventRepository(session).log_event("probe", "info", "bot role")
        await LLMAnalysisLogRepository(session).log(LLMAnalysisLog(analysis_type="probe"))
    assert again.date == day


async def test_the_bot_deletes_a_backtest_run_with_its_rows_and_keeps_its_live_history(
    bot: DatabaseManager, as_bot: asyncpg.Connection
) -> None:
    async with bot.get_session() as session:
        runs = BacktestRunRepository(session)
        run = await runs.start(
            "trend-1", "ema", timeframe="1h", data_start=T0, data_end=T0 + timedelta(days=1)
        )
        await runs.record_trades(run.id, [make_trade(trade_id=f"b{n}") for n in range(50)])
        await TradeRepository(session).insert(make_trade(trade_id="b0"))
    async with bot.scope("trend-1", "backtest", run.id).session() as journal:
        await journal.events.log_event("backtest", "info", "done")
    async with bot.get_session() as session:
        assert await BacktestRunRepository(session).delete(run.id) == 50
    assert await as_bot.fetchval("SELECT count(*) FROM trades WHERE trade_id = 'b0'") == 1
    assert await as_bot.fetchval("SELECT count(*) FROM system_events WHERE run_id IS NOT NULL") == 0


async def test_the_bot_keeps_its_state_and_locks(bot: DatabaseManager) -> None:
    async with bot.scope("trend-1", "paper").session() as journal:
        await journal.state.set("cooldown", T0)
        assert await journal.state.delete("cooldown")
        await journal.locks.lock("BTCUSDT", T0 + timedelta(hours=1), now=T0)
        assert await journal.locks.unlock("BTCUSDT", at=T0) == 1


async def test_the_bot_records_the_ledger(bot: DatabaseManager) -> None:
    """Orders, fills and funding, and the trade and position they make, with the bot's rights
    (the advisory lock of the ledger included)."""
    async with bot.scope("trend-1", "live").session() as journal:
        await journal.ledger.record_order(
            Order(client_order_id="bot-o1", trade_id="bot-t1", symbol="BTCUSDT", side="buy",
                  position_side="long", order_type="market", quantity=Decimal(1), placed_at=T0)
        )  # fmt: skip
        await journal.ledger.record_fill(
            Fill(exchange_fill_id="bot-f1", client_order_id="bot-o1", symbol="BTCUSDT",
                 side="buy", price=Decimal(100), quantity=Decimal(1), filled_at=T0)
        )  # fmt: skip
        await journal.ledger.record_funding(
            FundingPayment(symbol="BTCUSDT", position_side="long",
                           funding_time=T0 + timedelta(hours=8), amount=Decimal("-0.1"))
        )  # fmt: skip
        trade = await journal.trades.get_by_trade_id("bot-t1")
    assert trade is not None and trade.funding == Decimal("-0.1")


async def test_the_bot_reads_the_views(bot: DatabaseManager) -> None:
    async with bot.get_session(read_only=True) as session:
        for view in ("v_active_positions", "v_recent_trades"):
            await session.execute(text(f"SELECT count(*) FROM {view}"))


async def test_the_bot_cannot_migrate_the_schema(bot: DatabaseManager) -> None:
    with pytest.raises(StorageError, match="permission denied|must be owner"):
        await bot.downgrade("base")


async def test_nothing_is_granted_to_public(deployment: Deployment) -> None:
    owner = await deployment.connect("iftb_owner")
    try:
        public = await owner.fetch(
            "SELECT table_name FROM information_schema.role_table_grants "
            "WHERE grantee = 'PUBLIC' AND table_schema = 'public'"
        )
    finally:
        await owner.close()
    assert public == []


@pytest.mark.parametrize(
    "moment", ["1969-12-01 00:00Z", "2124-03-05 07:00Z", "294276-01-01 00:00Z"]
)
async def test_the_bot_cannot_fill_the_catalog_with_far_partitions(
    as_bot: asyncpg.Connection, moment: str
) -> None:
    with pytest.raises(asyncpg.DatetimeFieldOverflowError, match="outside 1970"):
        await as_bot.execute(f"SELECT iftb_ensure_ohlcv_partitions(ARRAY[timestamptz '{moment}'])")


# --- the second wave's surfaces (issue 26, items 1 and 2) -----------------------------------

SCOPED = ["trades", "positions", "daily_performance", "system_events", "llm_analysis_log",
          "bot_state", "pair_locks", "orders", "fills", "funding_payments"]  # fmt: skip


async def test_the_bot_cannot_relabel_live_history_as_its_run_and_delete_it(
    bot: DatabaseManager, as_bot: asyncpg.Connection
) -> None:
    """The attack: in one transaction insert a run, relabel default/live rows as that run (the
    CHECK holds), delete the run. Every relabel is refused, on every scoped table; the run
    deletes only its own rows."""
    async with bot.get_session() as session:
        await TradeRepository(session).insert(make_trade(trade_id="live-1"))
        await PositionRepository(session).update_position(make_position(symbol="ETHUSDT"))
    async with bot.scope().session() as journal:
        await journal.state.set("k", 1)
        await journal.locks.lock("BTCUSDT", datetime.now(UTC) + timedelta(hours=1))
    live = (
        "SELECT (SELECT count(*) FROM trades WHERE mode = 'live'),"
        " (SELECT count(*) FROM positions WHERE mode = 'live')"
    )
    before = tuple(await as_bot.fetchrow(live))
    run = await as_bot.fetchval(
        "INSERT INTO backtest_runs (bot, strategy, timeframe, data_start, data_end, status)"
        " VALUES ('default', 'attack', '1h', now() - interval '1 day', now(), 'finished')"
        " RETURNING id"
    )
    for table in ("trades", "positions", "bot_state", "pair_locks"):  # (events: no UPDATE at all)
        for change in ("mode = 'backtest', run_id = $1", "bot = 'other', run_id = $1 * 0 + NULL"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="scope is fixed"):
                async with as_bot.transaction():  # a savepoint: the refusal leaves the rest usable
                    await as_bot.execute(f"UPDATE {table} SET {change} WHERE true", run)
    guarded = await as_bot.fetch(
        "SELECT tgrelid::regclass::text AS name FROM pg_trigger WHERE tgname LIKE '%_keep_scope'"
    )
    assert sorted(row["name"] for row in guarded) == sorted(SCOPED)
    assert await as_bot.fetchval("SELECT iftb_delete_backtest_run($1)", run) == 0
    assert tuple(await as_bot.fetchrow(live)) == before


async def test_the_owner_may_still_move_a_row_between_scopes(deployment: Deployment) -> None:
    owner = await deployment.connect("iftb_owner")
    try:
        transaction = owner.transaction()
        await transaction.start()
        try:
            await owner.execute(
                "INSERT INTO bot_state (key, value_type, value) VALUES ('owned', 'str', 'v')"
            )
            moved = await owner.execute("UPDATE bot_state SET bot = 'renamed' WHERE key = 'owned'")
        finally:
            await transaction.rollback()
    finally:
        await owner.close()
    assert moved == "UPDATE 1"


@pytest.mark.parametrize("function", ["iftb_register_scopes", "iftb_revise_trade_scopes"])
async def test_the_registry_functions_serve_only_the_journal_tables(
    deployment: Deployment, as_bot: asyncpg.Connection, function: str
) -> None:
    """The bot attached the registry's SECURITY DEFINER functions to a temporary table of its
    own and wrote 200,001 forged scopes as the owner. It holds no EXECUTE on them now; and even a
    role that does (the owner) cannot make them act for another table."""
    forged = "CREATE TEMP TABLE forged (bot text, mode text, run_id bigint)"
    attach = (
        f"CREATE TRIGGER forge AFTER INSERT ON forged REFERENCING NEW TABLE AS changed_rows"
        f" FOR EACH STATEMENT EXECUTE FUNCTION public.{function}()"
    )
    await as_bot.execute(forged)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        async with as_bot.transaction():
            await as_bot.execute(attach)
    assert not await as_bot.fetchval(f"SELECT has_function_privilege('{function}()', 'EXECUTE')")
    owner = await deployment.connect("iftb_owner")
    try:
        transaction = owner.transaction()
        await transaction.start()
        try:
            await owner.execute(forged)
            await owner.execute(attach)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="runs only as the scope"):
                await owner.execute("INSERT INTO forged VALUES ('x', 'nonsense', NULL)")
        finally:
            await transaction.rollback()
    finally:
        await owner.close()
