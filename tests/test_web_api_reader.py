"""The dashboard as PostgreSQL's least-privilege reader (``iftb_reader`` of
``migrations/least_privilege_roles.sql``): every endpoint answers as that role, the role cannot
write a row or create anything, and its password appears in no answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from iftb.data.storage import DatabaseManager, ScopeRepository, StorageError, TradeRepository
from iftb.web import create_app
from tests.conftest import distribute_on_citus, scratch_postgres_database
from tests.factories import make_trade
from tests.support.pg_cluster import PostgresServer, run_psql
from tests.support.web_demo import TOKEN, build_demo
from tests.test_web_api_refusals import ENDPOINTS

pytestmark = pytest.mark.postgres_only

ROLES_SQL = Path(__file__).parents[1] / "migrations" / "least_privilege_roles.sql"
PASSWORDS = {
    "owner_password": "owner-pw-web-1",
    "bot_password": "bot-pw-web-2",
    "reader_password": "reader-pw-web-3",
}
ROLES = ("iftb_reader", "iftb_bot", "iftb_owner")


def url(server: PostgresServer, database: str, role: str, driver: str = "asyncpg") -> str:
    password = PASSWORDS[f"{role.removeprefix('iftb_')}_password"]
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://{role}:{password}@{server.host}:{server.port}/{database}"


@pytest.fixture(scope="module")
async def deployed(postgres_server: PostgresServer | None) -> AsyncIterator[tuple[str, str]]:
    """A database with the script's roles, migrated by the owner, who also writes the demo's
    data (as the bot, the demo's candle import fails on the Citus tier: "cannot perform DDL on
    placement", a library matter outside the dashboard); yields the owner's and the reader's
    URLs."""
    if postgres_server is None:
        pytest.skip("PostgreSQL unavailable")
    try:
        async with scratch_postgres_database(postgres_server) as database:
            run_psql(postgres_server, database, ROLES_SQL, variables=PASSWORDS)
            owner = DatabaseManager(url(postgres_server, database, "iftb_owner"))
            await owner.migrate()
            await owner.disconnect()
            await distribute_on_citus(postgres_server, database)
            await build_demo(url(postgres_server, database, "iftb_owner"))
            yield (
                url(postgres_server, database, "iftb_owner"),
                url(postgres_server, database, "iftb_reader"),
            )
    finally:
        admin = await asyncpg.connect(postgres_server.url(driver=""))
        try:
            for role in ROLES:
                await admin.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await admin.close()


async def test_every_endpoint_answers_as_the_reader(deployed: tuple[str, str]) -> None:
    owner_url, reader_url = deployed
    async with DatabaseManager(reader_url) as reader:
        transport = httpx.ASGITransport(app=create_app(reader, token=TOKEN))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client:
            answers = {path: await client.get(path) for path in ENDPOINTS}
            paper = await client.get("/api/statistics", params={"bot": "demo", "mode": "paper"})
    for path, response in answers.items():
        assert response.status_code == (404 if "ledger" in path else 200), (path, response.text)
        assert PASSWORDS["reader_password"] not in response.text
    async with DatabaseManager(owner_url) as owner, owner.get_session() as session:
        scopes = await ScopeRepository(session).list_scopes()
    assert [row["name"] for row in answers["/api/scopes"].json()] == [str(s.scope) for s in scopes]
    assert paper.json()["total_trades"] > 0


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO system_events (event_type, severity, message, bot, mode) "
        "VALUES ('x', 'info', 'x', 'default', 'live')",
        "UPDATE trades SET fee = 0",
        "DELETE FROM trades",
        "DELETE FROM ohlcv",
        "TRUNCATE llm_analysis_log",
        "CREATE TABLE intruder (id int)",
        "CREATE TEMP TABLE intruder (id int)",
        "SELECT iftb_ensure_ohlcv_partitions(ARRAY[timestamptz '1971-02-03 04:00Z'])",
    ],
)
async def test_the_reader_cannot_write(deployed: tuple[str, str], statement: str) -> None:
    _, reader_url = deployed
    connection = await asyncpg.connect(reader_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
    finally:
        await connection.close()


async def test_a_repository_write_as_the_reader_is_a_permission_error(
    deployed: tuple[str, str],
) -> None:
    _, reader_url = deployed
    with pytest.raises(StorageError, match="permission denied"):
        async with DatabaseManager(reader_url) as reader, reader.get_session() as session:
            await TradeRepository(session).insert(make_trade(entry_time=datetime.now(UTC)))
