"""What the dashboard's API refuses, and how: a missing or wrong token (401), an unknown scope
(404), malformed or hostile parameters (422 naming the parameter), a failing database (503) —
always one JSON sentence, never a traceback or a secret, and never a write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from iftb.data.storage import Base, DatabaseManager, ScopeRepository
from iftb.web import create_app
from iftb.web.app import STATIC
from tests.conftest import BACKENDS
from tests.support.pg_cluster import PostgresServer
from tests.support.web_demo import TOKEN, demo_database

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENDPOINTS = (
    "/api/scopes",
    "/api/statistics",
    "/api/daily",
    "/api/equity",
    "/api/positions",
    "/api/trades",
    "/api/trades/markers?symbol=BTCUSD",
    "/api/trades/t-1/ledger",
    "/api/llm-usage",
    "/api/events",
    "/api/inventory",
    "/api/candles?symbol=BTCUSD&timeframe=1h",
)


@pytest.fixture(scope="module", params=BACKENDS)
async def demo_db(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    postgres_server: PostgresServer | None,
    postgres_template: str | None,
) -> AsyncIterator[DatabaseManager]:
    """The demo's data, built once per backend for the module (the API only reads)."""
    folder = tmp_path_factory.mktemp("web-refusals")
    async with (
        demo_database(
            request.param, folder, sqlite_template, postgres_server, postgres_template
        ) as url,
        DatabaseManager(url) as manager,
    ):
        yield manager


@pytest.fixture(scope="module")
async def client(demo_db: DatabaseManager) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=create_app(demo_db, token=TOKEN), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


async def refusal(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return str(body["detail"])


async def test_every_api_route_wants_the_token(client: httpx.AsyncClient) -> None:
    for path in ENDPOINTS:
        missing = await client.get(path)
        assert "missing token" in await refusal(missing, 401), path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await client.get(path, headers={"Authorization": "Bearer " + "x" * len(TOKEN)})
        assert await refusal(wrong, 401) == "wrong token", path
        basic = await client.get(path, headers={"Authorization": f"Basic {TOKEN}"})
        await refusal(basic, 401)


async def test_the_right_token_reads_every_api_route(client: httpx.AsyncClient) -> None:
    for path in ENDPOINTS:
        response = await client.get(path, headers=AUTH)
        expected = 404 if "ledger" in path else 200  # no trade t-1: a clear 404
        assert response.status_code == expected, (path, response.text)


async def test_every_api_route_is_in_the_openapi_schema_which_needs_no_token(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    documented = set(schema["paths"])
    assert {path.split("?")[0].replace("t-1", "{trade_id}") for path in ENDPOINTS} == documented


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({"bot": "nobody"}, 404, "unknown scope nobody/live"),
        ({"bot": "' OR 1=1 --"}, 404, "unknown scope"),
        ({"mode": "sandbox"}, 422, "mode:"),
        ({"mode": "backtest"}, 422, "run_id: a backtest scope is one run"),
        ({"run_id": "1; DROP TABLE trades"}, 422, "run_id: Input should be a valid integer"),
        ({"run_id": "7"}, 422, "run_id: only backtest scopes have a run"),
        ({"bot": "x" * 51}, 422, "bot:"),
        ({"start": "yesterday"}, 422, "start:"),
        ({"end": "2024-13-45"}, 422, "end:"),
        ({"start": "0001-01-01T00:00:00Z"}, 422, "start:"),
        ({"limit": str(10**9)}, 422, "limit: Input should be less than or equal to 1000"),
        ({"limit": "0"}, 422, "limit:"),
        ({"limit": "ten"}, 422, "limit:"),
        ({"offset": "-1"}, 422, "offset:"),
        ({"symbol": "' OR 1=1 --"}, 422, "symbol: only letters, digits"),
        ({"exchange": "binance' --"}, 422, "exchange: only letters, digits"),
    ],
)
async def test_bad_trade_queries_are_refused_clearly(
    client: httpx.AsyncClient, query: dict[str, str], status: int, words: str
) -> None:
    response = await client.get("/api/trades", params=query, headers=AUTH)
    assert words in await refusal(response, status)


@pytest.mark.parametrize(
    ("path", "query", "words"),
    [
        ("/api/candles", {"symbol": "BTCUSD", "timeframe": "7x"}, "timeframe"),
        ("/api/candles", {"symbol": "BTCUSD"}, "timeframe: Field required"),
        ("/api/candles", {"symbol": "BTCUSD", "timeframe": "1h", "price_type": "x"}, "price_type"),
        ("/api/candles", {"symbol": "BTCUSD", "timeframe": "1h", "limit": "1001"}, "limit"),
        ("/api/llm-usage", {"days": "0"}, "days:"),
        ("/api/llm-usage", {"days": "1e9"}, "days:"),
        ("/api/events", {"min_level": "panic"}, "min_level:"),
        ("/api/daily", {"start": "2024-01-01T25:00"}, "start:"),
        ("/api/trades/markers", {}, "symbol: Field required"),
    ],
)
async def test_bad_parameters_of_other_routes_are_refused_clearly(
    client: httpx.AsyncClient, path: str, query: dict[str, str], words: str
) -> None:
    response = await client.get(path, params=query, headers=AUTH)
    assert words in await refusal(response, 422)


async def test_an_unknown_trade_is_a_clear_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/trades/' OR '1'='1/ledger", headers=AUTH)
    assert "no trade \"' OR '1'='1\" in scope default/live" in await refusal(response, 404)


async def test_refused_requests_write_nothing(
    client: httpx.AsyncClient, demo_db: DatabaseManager
) -> None:
    before = await _row_counts(demo_db)
    for query in ({"bot": "new-bot"}, {"symbol": "'; DELETE FROM trades; --"}, {"limit": "-5"}):
        response = await client.get("/api/trades", params=query, headers=AUTH)
        assert 400 <= response.status_code < 500
    for path in ENDPOINTS:
        await client.get(path, headers=AUTH)
    assert await _row_counts(demo_db) == before


async def test_an_unexpected_error_is_a_bare_500_that_names_nothing(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Any) -> None:
        raise RuntimeError(f"secret internals {TOKEN}")

    monkeypatch.setattr(ScopeRepository, "list_scopes", broken)
    response = await client.get("/api/scopes", headers=AUTH)
    assert await refusal(response, 500) == "internal error (see the server's log)"


async def test_a_database_that_is_down_is_a_503_without_its_password() -> None:
    password = "pw-never-shown-4711"
    manager = DatabaseManager(f"postgresql+asyncpg://iftb:{password}@127.0.0.1:9/iftb")
    transport = httpx.ASGITransport(app=create_app(manager, token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.get("/api/statistics", headers=AUTH)
    detail = await refusal(response, 503)
    assert password not in response.text and TOKEN not in response.text
    assert detail.startswith("database unavailable")


async def test_no_answer_holds_the_token_or_the_database_password(
    client: httpx.AsyncClient, demo_db: DatabaseManager
) -> None:
    secrets = [TOKEN]
    password = demo_db.engine.url.password
    if password:  # PostgreSQL's URL has one
        secrets.append(password)
    for path in (*ENDPOINTS, "/openapi.json", "/api/nothing-here", "/", "/docs"):
        for headers in ({}, AUTH, {"Authorization": f"Bearer {TOKEN}x"}):
            response = await client.get(path, headers=headers)
            for secret in secrets:
                assert secret not in response.text, path
                assert secret not in str(response.headers), path


async def test_the_page_and_its_assets_need_no_token(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/" in page.text
    for asset in ("dashboard.js", "dashboard.css", "lightweight-charts.standalone.production.js"):
        assert (await client.get(f"/static/{asset}")).status_code == 200, asset
    assert (await client.get("/static/../auth.py")).status_code == 404


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="token: at least 16 characters"):
        create_app(DatabaseManager("sqlite+aiosqlite:///:memory:"), token="short")


async def _row_counts(manager: DatabaseManager) -> dict[str, int]:
    async with manager.get_session(read_only=True) as session:
        return {
            table.name: (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
            for table in Base.metadata.sorted_tables
        }


async def test_nothing_is_loaded_from_outside_and_every_answer_carries_the_policy(
    client: httpx.AsyncClient,
) -> None:
    """``/docs`` and ``/redoc`` loaded their scripts from a public CDN into the origin where the
    token is typed: not served now; the page and its assets name no other origin, and every
    answer sends a Content-Security-Policy of the dashboard's own origin."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert (await client.get(path)).status_code == 404
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "iftb dashboard API"
    for path in ("/", "/api/scopes", "/static/dashboard.js", "/openapi.json"):
        response = await client.get(path, headers=AUTH)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "http://" not in policy and "https://" not in policy
    for name, text in static_texts().items():
        assert "cdn." not in text and "unpkg" not in text and "jsdelivr" not in text, name


def static_texts() -> dict[str, str]:
    return {path.name: path.read_text(errors="replace") for path in STATIC.iterdir()}


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200), ("127.0.0.1:8765", 200), ("localhost:8765", 200), ("[::1]:8765", 200),
        ("evil.example", 400), ("evil.example:8765", 400), ("127.0.0.1.evil.example", 400),
        ("", 400), ("[::1", 400),
    ],
)  # fmt: skip
async def test_a_host_header_other_than_the_address_served_is_refused(
    client: httpx.AsyncClient, host: str, status: int
) -> None:
    """DNS rebinding: another site's page whose name resolves to 127.0.0.1 reaches the server
    with its own name in Host; it is refused before any route, token or not."""
    response = await client.get("/api/scopes", headers=AUTH | {"Host": host})
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json() == {"detail": "unknown Host header: not the address served"}
