"""Test fixtures: every storage test runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``IFTB_TEST_POSTGRES_URL`` when set, otherwise from a throwaway cluster
started from the installed binaries for this test session. Without either, PostgreSQL tests are
skipped with one loud line — except under ``CI=true``, where that fails the run.

``pytest --citus`` is the Citus tier: every PostgreSQL test runs against the coordinator of a
throwaway Citus cluster (a coordinator and two workers), with ``ohlcv`` distributed as
``iftb-db distribute`` does it; the SQLite runs are left out. The run fails when the cluster
cannot start.

Each test gets its own database: a copy of a migrated SQLite file, or a PostgreSQL database
cloned from a migrated template (``CREATE DATABASE ... TEMPLATE``; on Citus on every node), so
tests never see each other's rows and may commit freely.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import DatabaseManager
from tests.support import citus_cluster
from tests.support.citus_cluster import CitusCluster, citus_available, throwaway_citus_cluster
from tests.support.pg_cluster import (
    PostgresServer,
    postgres_binaries_available,
    server_from_env,
    throwaway_cluster,
)

BACKENDS = ("sqlite", "postgresql")
TEMPLATE_DB = "iftb_test_template"
_database_numbers = itertools.count(1)
_postgres_unavailable_reason: str | None = None
_citus: CitusCluster | None = None
"""The Citus cluster of a ``--citus`` run, whose coordinator is the session's server."""
CITUS_SHARDS = 4
"""Shards of the distributed ``ohlcv`` in the tier: few, so that every test stays fast."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak workload too")
    parser.addoption(
        "--citus", action="store_true", help="the Citus tier: PostgreSQL tests on a Citus cluster"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the backend runs a test is not meant for, and the long soak unless asked for."""
    keep, drop = [], []
    citus = config.getoption("--citus")
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        on_sqlite = backend == "sqlite" or (backend is None and not _uses_postgres(item))
        unwanted = (
            (on_sqlite and (citus or item.get_closest_marker("postgres_only")))
            or (backend == "postgresql" and item.get_closest_marker("sqlite_only"))
            or (not citus and item.get_closest_marker("citus_only"))
        )
        soak_unwanted = item.get_closest_marker("soak") and not config.getoption("--soak")
        (drop if unwanted or soak_unwanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _uses_postgres(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return "postgres_server" in fixtures or "backend" in fixtures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _postgres_unavailable_reason:
        terminalreporter.write_line(
            f"!!! PostgreSQL tests were SKIPPED: {_postgres_unavailable_reason} !!!", red=True
        )


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer | None]:
    """The PostgreSQL server of this test session, or None when none can be had (not in CI)."""
    global _postgres_unavailable_reason, _citus
    if request.config.getoption("--citus"):
        if not citus_available():
            pytest.fail("--citus: Citus is not installed (see ../shared/citus/)", pytrace=False)
        with throwaway_citus_cluster() as _citus:
            yield _citus.coordinator
        _citus = None
        return
    external = server_from_env()
    if external is not None:
        yield external
        return
    if not postgres_binaries_available():
        _postgres_unavailable_reason = "no PostgreSQL binaries and IFTB_TEST_POSTGRES_URL unset"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {_postgres_unavailable_reason}", pytrace=False)
        yield None
        return
    with throwaway_cluster() as server:
        yield server


@pytest.fixture(scope="session")
async def postgres_template(postgres_server: PostgresServer | None) -> str | None:
    """A migrated template database that every PostgreSQL test database is cloned from."""
    if postgres_server is None:
        return None
    if _citus is not None:
        await citus_cluster.create_database(_citus, TEMPLATE_DB)
    else:
        admin = await asyncpg.connect(postgres_server.url(driver=""))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
            await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await admin.close()
    manager = DatabaseManager(postgres_server.url(TEMPLATE_DB))
    await manager.migrate()
    await manager.disconnect()
    await distribute_on_citus(postgres_server, TEMPLATE_DB)
    if _citus is not None:
        await citus_cluster.seal_template(_citus, TEMPLATE_DB)
    return TEMPLATE_DB


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that every SQLite test database is copied from."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    manager = DatabaseManager(f"sqlite+aiosqlite:///{path}")
    await manager.migrate()
    await manager.disconnect()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test (``postgres_only``/``sqlite_only`` tests run on one)."""
    name: str = request.param
    return name


@asynccontextmanager
async def scratch_postgres_database(
    server: PostgresServer, template: str | None = None
) -> AsyncIterator[str]:
    """A new PostgreSQL database (a clone of ``template`` when given), dropped afterwards.

    On the Citus tier it exists on every node; without a template it has the extension and
    the workers, and no schema."""
    name = f"iftb_test_{os.getpid()}_{next(_database_numbers)}"
    if _citus is not None and server == _citus.coordinator:
        await citus_cluster.create_database(_citus, name, template)
        try:
            yield name
        finally:
            await citus_cluster.drop_database(_citus, name)
        return
    clone = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(server.url(driver=""))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
    finally:
        await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(server.url(driver=""))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def distribute_on_citus(server: PostgresServer, database: str) -> None:
    """On the Citus tier, distribute ``database``'s candles as ``iftb-db distribute`` does (a
    superuser on the coordinator, at the schema head); on plain PostgreSQL, nothing."""
    if _citus is None or server != _citus.coordinator:
        return
    manager = DatabaseManager(server.url(database))
    try:
        await manager.distribute(shard_count=CITUS_SHARDS)
    finally:
        await manager.disconnect()


def on_citus() -> bool:
    """Whether this run is the Citus tier."""
    return _citus is not None


@pytest.fixture
def citus(postgres_server: PostgresServer | None) -> CitusCluster:
    """The Citus cluster of the tier (tests using it are ``citus_only``)."""
    assert _citus is not None, "a citus_only test ran outside the Citus tier"
    return _citus


def _require_postgres(server: PostgresServer | None) -> PostgresServer:
    if server is None:
        pytest.skip(f"PostgreSQL unavailable: {_postgres_unavailable_reason}")
    return server


@pytest.fixture
async def database_url(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_server: PostgresServer | None,
    postgres_template: str | None,
) -> AsyncIterator[str]:
    """The URL of a fresh, migrated database for this test on the backend under test."""
    if backend == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server = _require_postgres(postgres_server)
    async with scratch_postgres_database(server, postgres_template) as name:
        yield server.url(name)


@pytest.fixture
async def empty_database_url(
    backend: str, tmp_path: Path, postgres_server: PostgresServer | None
) -> AsyncIterator[str]:
    """The URL of a fresh database with no schema at all, for migration tests."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server = _require_postgres(postgres_server)
    async with scratch_postgres_database(server) as name:
        yield server.url(name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[DatabaseManager]:
    """A connected DatabaseManager on a fresh database of the backend under test."""
    manager = DatabaseManager(database_url)
    await manager.connect()
    try:
        yield manager
    finally:
        await manager.disconnect()


@pytest.fixture
async def session(db: DatabaseManager) -> AsyncIterator[AsyncSession]:
    """One unit of work on the test database (committed at the end of the test)."""
    async with db.get_session() as session:
        yield session
