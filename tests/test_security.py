"""Secrets stay secret (logs at DEBUG, reprs, errors, tracebacks), and the bot's least-privilege
PostgreSQL role does its work but cannot change the schema."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote

import asyncpg
import pytest

from iftb.config import DatabaseSettings
from iftb.data.storage import (
    DatabaseConnectionError,
    DatabaseManager,
    OHLCVBar,
    OHLCVRepository,
    SystemEventRepository,
)
from iftb.utils import configure_logging, get_logger
from tests.support.pg_cluster import PostgresServer

pytestmark = pytest.mark.postgres_only

PASSWORD = "Zq9-s3cr3t/pa:ss@word"  # URL-hostile characters, on purpose
BAR = OHLCVBar(
    "BTCUSDT", "binance", "1h", datetime(2024, 1, 1, tzinfo=UTC), Decimal(1), Decimal(2),
    Decimal(1), Decimal(2), Decimal(3),
)  # fmt: skip


@pytest.fixture
async def secret_role(postgres_server: PostgresServer, database_url: str) -> str:
    """A role whose password is ``PASSWORD``; returns a URL that logs in as it (made in the
    test's database, from where Citus carries it to the workers on the Citus tier)."""
    database = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_server.url(database, driver=""))
    try:
        await admin.execute("DROP ROLE IF EXISTS iftb_secret_probe")
        await admin.execute(f"CREATE ROLE iftb_secret_probe SUPERUSER LOGIN PASSWORD '{PASSWORD}'")
    finally:
        await admin.close()
    return (
        f"postgresql+asyncpg://iftb_secret_probe:{quote(PASSWORD, safe='')}@"
        f"{postgres_server.host}:{postgres_server.port}/{database}"
    )


def everything_said(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], *extra: object
) -> str:
    captured = capsys.readouterr()
    records = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    return "\n".join([captured.out, captured.err, records, *map(str, extra)])


async def test_no_password_in_debug_logs_reprs_or_sql_echo(
    secret_role: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="DEBUG", fmt="json")
    caplog.set_level(logging.DEBUG)
    try:
        manager = DatabaseManager(secret_role, echo=True)
        async with manager, manager.get_session() as session:
            await OHLCVRepository(session).upsert_many([BAR])
            await SystemEventRepository(session).log_event(
                "probe", "warning", f"connected via {secret_role}", details={"password": PASSWORD}
            )
        said = everything_said(caplog, capsys, repr(manager), manager.safe_url)
    finally:
        configure_logging(level="INFO", fmt="console")
    assert "iftb_secret_probe" in said  # the test did see the URL's rendering
    assert PASSWORD not in said and quote(PASSWORD, safe="") not in said


async def test_no_password_in_settings_reprs() -> None:
    settings = DatabaseSettings(host="db", password=PASSWORD)  # type: ignore[arg-type]
    for shown in (repr(settings), str(settings), settings.safe_url(), settings.model_dump_json()):
        assert PASSWORD not in shown and quote(PASSWORD, safe="") not in shown


async def test_no_password_in_connection_errors_or_their_tracebacks(
    secret_role: str, postgres_server: PostgresServer
) -> None:
    wrong = secret_role.replace(quote(PASSWORD, safe=""), quote(PASSWORD + "x", safe=""))
    unreachable = secret_role.replace(f":{postgres_server.port}/", ":1/")
    for url in (wrong, unreachable):
        with pytest.raises(DatabaseConnectionError) as caught:
            await DatabaseManager(url, connect_timeout=2).connect()
        shown = str(caught.value) + "".join(traceback.format_exception(caught.value))
        assert "iftb_secret_probe" in shown
        for secret in (PASSWORD, PASSWORD + "x", quote(PASSWORD, safe="")):
            assert secret not in shown


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_logged_connection_failure_shows_no_password(
    fmt: str, secret_role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = secret_role.replace(quote(PASSWORD, safe=""), quote(PASSWORD + "x", safe=""))
    configure_logging(level="INFO", fmt=fmt)
    try:
        try:
            await DatabaseManager(wrong, connect_timeout=2).connect()
        except DatabaseConnectionError:
            get_logger("iftb.probe").exception("connect failed")
        said = capsys.readouterr().err
    finally:
        configure_logging(level="INFO", fmt="console")
    assert "Traceback" in said and "InvalidPasswordError" in said  # the traceback was rendered
    for secret in (PASSWORD, PASSWORD + "x", quote(PASSWORD, safe=""), quote(PASSWORD + "x")):
        assert secret not in said


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_secrets_in_log_context_are_masked_at_any_depth(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="INFO", fmt=fmt)
    try:
        get_logger("iftb.probe").warning(
            "exchange call",
            config={"db": {"password": "s1-pw"}},
            details={"creds": {"password": "s2-pw"}},
            request={"headers": {"Authorization": "Bearer s3-tok", "X-API-KEY": "s4-key"}},
            api_key="s5-key",
            secret="s6-sec",
            token="s7-tok",
            note="retrying with Authorization: Bearer s8-tok and password=s9-pw",
        )
        said = capsys.readouterr().err
    finally:
        configure_logging(level="INFO", fmt="console")
    assert "exchange call" in said
    for n, kind in enumerate(["pw", "pw", "tok", "key", "key", "sec", "tok", "tok", "pw"], 1):
        assert f"s{n}-{kind}" not in said
