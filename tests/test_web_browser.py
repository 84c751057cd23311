"""The dashboard's page in a real headless Chromium, against a real server over the demo's data,
on SQLite and PostgreSQL: the figures shown are the API's, to the digit; the charts have drawn;
switching scope changes the figures; the page refreshes itself; a wrong or missing token shows
the refusal and no data; no request leaves 127.0.0.1; the console stays clean.

Screenshots of the SQLite run go to ``IFTB_SCREENSHOTS`` when it names a folder (the docs' are
made with ``IFTB_SCREENSHOTS=docs/images``), else to the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from playwright.async_api import Browser, FloatRect, Page, async_playwright

from iftb.data.storage import DatabaseManager
from iftb.web import create_app
from tests.conftest import BACKENDS
from tests.support.browser import Watch, canvases, chromium, figures, serving
from tests.support.pg_cluster import PostgresServer
from tests.support.web_demo import LEDGER_SCOPE, TOKEN, demo_database

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT_MS = 30_000
QUIET = "?refresh=0"
"""Tests that read figures stop the refresh, so that no table is redrawn while it is read."""
STATISTICS = [
    *("net_pnl", "total_trades", "win_rate", "profit_factor", "expectancy", "gross_profit"),
    *("gross_loss", "total_fees", "total_funding", "largest_win", "largest_loss"),
    *("max_drawdown_amount", "max_drawdown_pct", "avg_holding_time"),
]
TRADE_FIELDS = [
    *("trade_id", "symbol", "side", "action", "entry_time", "entry_price", "exit_time"),
    *("exit_price", "quantity", "fee", "realized_pnl"),
]
POSITION_FIELDS = [
    *("symbol", "exchange", "side", "quantity", "entry_price", "current_price"),
    *("unrealized_pnl", "leverage", "entry_time"),
]
EVENT_FIELDS = ["created_at", "severity", "event_type", "message"]
LLM_FIELDS = ["day", "model", "calls", "total_tokens", "estimated_cost"]
LLM_MODEL_FIELDS = ["model", "calls", "total_tokens", "estimated_cost", "p95_latency_ms"]
SERIES_FIELDS = ["symbol", "exchange", "timeframe", "price_type", "first", "last"]
SERIES_FIELDS += ["count", "missing", "gaps"]
CHARTS = ("equity", "daily", "candles")
REFUSED_CLIP: FloatRect = {"x": 0, "y": 0, "width": 1400, "height": 160}
HOSTILE = '<img src=x onerror="document.body.dataset.injected=1"> & <script>alert(1)</script>'
"""An event message that would run if the page wrote it as markup."""


class Served(NamedTuple):
    backend: str
    database_url: str
    base_url: str


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The suite's backend parameter, once per module: the Citus tier leaves out SQLite."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
async def served(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    postgres_server: PostgresServer | None,
    postgres_template: str | None,
) -> AsyncIterator[Served]:
    """A real server over the demo's data on the backend, and where it listens."""
    folder = tmp_path_factory.mktemp("browser")
    async with demo_database(
        backend, folder, sqlite_template, postgres_server, postgres_template
    ) as url:
        with serving(create_app(DatabaseManager(url), token=TOKEN)) as base:
            yield Served(backend, url, base)


@pytest.fixture(scope="module")
def base_url(served: Served) -> str:
    return served.base_url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(executable))
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[tuple[Page, Watch]]:
    """A fresh tab (its own session storage) whose requests and console are watched."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    opened = await context.new_page()
    watch = Watch()
    await watch.attach(opened)
    yield opened, watch
    await context.close()
    assert watch.foreign_requests == [], "requests left 127.0.0.1"


@pytest.fixture(scope="module")
async def api(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH) as client:
        yield client


async def answer(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def shown(value: Any) -> str:
    """How the page writes one of the API's values: as is, a missing one as a dash."""
    return "—" if value is None else str(value)


async def open_dashboard(page: Page, base_url: str, query: str = QUIET) -> None:
    await page.goto(f"{base_url}/{query}#token={TOKEN}")
    await page.wait_for_selector("body[data-rendered=true]", timeout=WAIT_MS)


async def choose_scope(page: Page, name: str) -> None:
    """Pick ``bot/mode[/run]`` in the selector and wait until its figures are drawn."""
    key = name + ("/" if name.count("/") == 1 else "")
    await page.select_option("[data-testid=scope-select]", key)
    await page.wait_for_selector(f'body[data-scope="{key}"]', timeout=WAIT_MS)


def rows(items: list[dict[str, Any]], prefix: str, names: list[str]) -> dict[str, list[str]]:
    """The API's items as the page's columns: ``prefix-name`` -> one text per row."""
    return {f"{prefix}-{name}": [shown(item[name]) for item in items] for name in names}


async def expected_figures(api: httpx.AsyncClient, scope: dict[str, str]) -> dict[str, list[str]]:
    """What the page must show for ``scope``, read from the API as the page reads it."""
    trades = await answer(api, "/api/trades", **scope, limit=50)
    exchange = trades["trades"][0]["exchange"]
    statistics = await answer(api, "/api/statistics", **scope)
    positions = await answer(api, "/api/positions", **scope, exchange=exchange)
    events = await answer(api, "/api/events", **scope, limit=50)
    spend = await answer(api, "/api/llm-usage", **scope, days=30)
    series = await answer(api, "/api/inventory")
    return (
        {f"stat-{name}": [shown(statistics[name])] for name in STATISTICS}
        | rows(trades["trades"], "trade", TRADE_FIELDS)
        | rows(positions, "position", POSITION_FIELDS)
        | rows(events, "event", EVENT_FIELDS)
        | rows(spend["by_day"], "llm", LLM_FIELDS)
        | rows(spend["by_model"], "llm_model", LLM_MODEL_FIELDS)
        | {"llm_model-failed": [str(row["errors"] + row["timeouts"]) for row in spend["by_model"]]}
        | rows(series, "series", SERIES_FIELDS)
    )


def assert_shows(page_figures: dict[str, list[str]], expected: dict[str, list[str]]) -> None:
    for testid, values in expected.items():
        assert page_figures.get(testid, []) == values, testid


async def test_the_figures_shown_are_the_apis(
    page: tuple[Page, Watch], base_url: str, api: httpx.AsyncClient
) -> None:
    tab, watch = page
    await open_dashboard(tab, base_url)
    expected = await expected_figures(api, {"bot": "default", "mode": "live"})
    assert len(expected["trade-trade_id"]) == 5 and expected["event-severity"][0] == "error"
    assert len(expected["llm_model-model"]) == 2, "the demo's two models"
    assert_shows(await figures(tab), expected)
    # the API's statistics have no starting balance: the percentage says what it is of
    label = tab.locator("[data-testid=stat-max_drawdown_pct]").locator("xpath=../dt")
    assert await label.inner_text() == "Max drawdown % of peak PnL"
    assert watch.console_errors == []


async def test_switching_scope_shows_that_scopes_figures(
    page: tuple[Page, Watch], base_url: str, api: httpx.AsyncClient
) -> None:
    tab, watch = page
    await open_dashboard(tab, base_url)
    live = (await figures(tab))["stat-net_pnl"]
    await choose_scope(tab, "demo/paper")
    paper = await figures(tab)
    assert paper["stat-net_pnl"] != live
    assert_shows(paper, await expected_figures(api, {"bot": "demo", "mode": "paper"}))
    await choose_scope(tab, f"{LEDGER_SCOPE.bot}/{LEDGER_SCOPE.mode}")
    ledger = await figures(tab)
    expected = await expected_figures(api, {"bot": LEDGER_SCOPE.bot, "mode": LEDGER_SCOPE.mode})
    assert len(expected["position-symbol"]) == 1, "the ledger scope holds one open position"
    assert_shows(ledger, expected)
    assert watch.console_errors == []


async def test_the_charts_have_drawn(
    page: tuple[Page, Watch], base_url: str, api: httpx.AsyncClient
) -> None:
    tab, watch = page
    await open_dashboard(tab, base_url)
    for chart in CHARTS:
        drawn = await canvases(tab, f"[data-testid=chart-{chart}]")
        assert drawn and all(canvas["width"] > 0 and canvas["height"] > 0 for canvas in drawn)
        assert max(canvas["ink"] for canvas in drawn) > 10, f"{chart}: blank canvases"
    candles, marks = await tab.evaluate(
        "[view.charts.candle.data().length, view.charts.markers.markers().length]"
    )
    [series] = await answer(api, "/api/inventory")
    assert candles == min(series["count"], 1000)
    markers = await answer(
        api, "/api/trades/markers", symbol=series["symbol"], exchange=series["exchange"]
    )
    assert marks == len(markers) == 10, "each of the five trades' entry and exit"
    equity = await answer(api, "/api/equity", exchange=series["exchange"])
    assert await tab.evaluate("view.charts.balance.data().length") == len(equity) > 0
    assert watch.console_errors == []


async def test_the_page_refreshes_itself(page: tuple[Page, Watch], base_url: str) -> None:
    tab, watch = page
    await open_dashboard(tab, base_url, "?refresh=1")
    await tab.wait_for_selector("body[data-refreshes='3']", timeout=WAIT_MS)
    assert watch.console_errors == []


async def test_a_wrong_token_is_refused_and_shows_no_data(
    page: tuple[Page, Watch], base_url: str
) -> None:
    tab, watch = page
    await tab.goto(f"{base_url}/{QUIET}#token=not-the-token-0123456789")
    await assert_refused(tab)
    assert watch.console_errors and all("401" in error for error in watch.console_errors)


async def test_a_missing_token_is_refused_and_shows_no_data(
    page: tuple[Page, Watch], base_url: str
) -> None:
    tab, watch = page
    await tab.goto(f"{base_url}/{QUIET}")
    await assert_refused(tab)
    assert "no token" in (await tab.text_content("[data-testid=banner]") or "")
    assert all("401" in error for error in watch.console_errors)


async def test_the_right_token_opened_after_a_refusal_shows_the_data(
    page: tuple[Page, Watch], base_url: str
) -> None:
    tab, watch = page
    await tab.goto(f"{base_url}/{QUIET}#token=not-the-token-0123456789")
    await assert_refused(tab)
    await tab.goto(f"{base_url}/{QUIET}#token={TOKEN}")  # the same page: no reload
    await tab.wait_for_selector("body[data-rendered=true]", timeout=WAIT_MS)
    assert await tab.locator("[data-testid=banner]").is_hidden()
    assert (await figures(tab))["stat-total_trades"] == ["5"]
    assert all("401" in error for error in watch.console_errors)


async def assert_refused(tab: Page) -> None:
    banner = tab.locator("[data-testid=banner]")
    await banner.wait_for(state="visible", timeout=WAIT_MS)
    assert "Token refused" in (await banner.text_content() or "")
    assert await tab.locator("#dashboard").is_hidden()
    cells = {f"stat-{name}" for name in STATISTICS} | {f"trade-{name}" for name in TRADE_FIELDS}
    cells |= {"position-symbol", "event-message", "llm-day", "llm_model-model", "series-symbol"}
    assert cells.isdisjoint(await figures(tab)), "no figure is shown without the token"
    assert await tab.locator("[data-testid=scope-select] option").count() == 0


async def test_strings_from_the_journal_are_shown_as_text(
    page: tuple[Page, Watch], served: Served
) -> None:
    async with (
        DatabaseManager(served.database_url) as manager,
        manager.scope("demo", "paper").session() as journal,
    ):
        await journal.events.log_event("<b>bold</b>", "error", HOSTILE)
    tab, watch = page
    await open_dashboard(tab, served.base_url)
    await choose_scope(tab, "demo/paper")
    assert (await figures(tab))["event-message"][0] == HOSTILE
    assert (await figures(tab))["event-event_type"][0] == "<b>bold</b>"
    assert await tab.locator("[data-testid=events] img, [data-testid=events] b").count() == 0
    assert await tab.evaluate("document.body.dataset.injected") is None
    assert watch.console_errors == []


@pytest.mark.sqlite_only
async def test_screenshots(page: tuple[Page, Watch], served: Served, tmp_path: Path) -> None:
    """The overview, the candle chart with its marks, and the refusal (the SQLite run's)."""
    folder = Path(os.environ.get("IFTB_SCREENSHOTS") or tmp_path)
    tab, _ = page
    base = served.base_url
    await open_dashboard(tab, base)
    await tab.screenshot(path=folder / "dashboard-overview.png", full_page=True)
    await tab.locator("section", has=tab.locator("[data-testid=chart-candles]")).screenshot(
        path=folder / "dashboard-candles.png"
    )
    await tab.evaluate("sessionStorage.clear()")
    await tab.goto(f"{base}/{QUIET}#token=not-the-token-0123456789")
    await assert_refused(tab)
    await tab.screenshot(path=folder / "dashboard-refused.png", clip=REFUSED_CLIP)
    for name in ("overview", "candles", "refused"):
        assert (folder / f"dashboard-{name}.png").stat().st_size > 0
