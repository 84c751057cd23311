"""``/api/statistics`` keeps what it computed under the scope's trades revision: the same figures
are served without recomputing while no trade of the scope is written, and every write, by the
library or around it, is seen by the next request. On both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from iftb.data.storage import DatabaseManager, Scope, ScopeRepository
from iftb.web import create_app
from iftb.web.statistics_cache import RevisionCache
from tests.factories import T0, make_trade
from tests.support.web_demo import TOKEN

LIVE = Scope("trend-1", "live")


@pytest.fixture
async def client(db: DatabaseManager) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(db, token=TOKEN), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://127.0.0.1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as http:
        yield http


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[Scope]:
    """The scopes whose statistics were computed (not served from the cache), in order."""
    calls: list[Scope] = []
    compare = ScopeRepository.compare

    async def counting(self: ScopeRepository, scopes: Any, **window: Any) -> Any:
        calls.extend(scopes)
        return await compare(self, scopes, **window)

    monkeypatch.setattr(ScopeRepository, "compare", counting)
    return calls


async def close_trade(db: DatabaseManager, scope: Scope, trade_id: str, pnl: str) -> None:
    async with db.scope(scope.bot, scope.mode).session() as journal:
        await journal.trades.insert(
            make_trade(
                trade_id=trade_id,
                action="close",
                exit_price=Decimal("41000"),
                exit_time=T0 + timedelta(hours=1),
                realized_pnl=Decimal(pnl),
            )
        )


async def statistics(client: httpx.AsyncClient, **window: str) -> dict[str, Any]:
    response = await client.get("/api/statistics", params={"bot": LIVE.bot, **window})
    assert response.status_code == 200, response.text
    figures: dict[str, Any] = response.json()
    return figures


async def repository_figures(db: DatabaseManager) -> tuple[int, Decimal]:
    async with db.scope(LIVE.bot, LIVE.mode).session(read_only=True) as journal:
        figures = await journal.trades.get_statistics(days=36_500)
    return figures.total_trades, figures.net_pnl


async def test_statistics_are_computed_again_only_after_a_write_of_the_scopes_trades(
    db: DatabaseManager, client: httpx.AsyncClient, computed: list[Scope]
) -> None:
    await close_trade(db, LIVE, "a", "12.5")
    first = await statistics(client)
    assert (first["total_trades"], Decimal(first["net_pnl"])) == await repository_figures(db)
    assert await statistics(client) == first
    assert computed == [LIVE]  # the second answer came from the cache

    await close_trade(db, Scope("trend-1", "paper"), "a", "99")  # another scope's trade
    await statistics(client)
    assert computed == [LIVE]

    await close_trade(db, LIVE, "b", "-2.25")
    second = await statistics(client)
    assert (second["total_trades"], Decimal(second["net_pnl"])) == (2, Decimal("10.25"))
    assert computed == [LIVE, LIVE]

    async with db.get_session() as session:  # around the library: seen all the same
        await session.execute(text("UPDATE trades SET realized_pnl = 20 WHERE trade_id = 'b'"))
    third = await statistics(client)
    assert (third["total_trades"], Decimal(third["net_pnl"])) == await repository_figures(db)
    assert Decimal(third["net_pnl"]) == Decimal("32.5")

    await statistics(client, start="2024-01-01T00:30:00Z")  # another window: its own entry
    assert computed == [LIVE] * 4


async def test_the_cache_keeps_its_most_recently_used_entries() -> None:
    cache = RevisionCache[str](entries=2)
    computed: list[str] = []

    def computing(value: str) -> Any:
        async def compute() -> str:
            computed.append(value)
            return value

        return compute

    for key in ("a", "b", "a", "c", "a", "b"):  # c pushes b out; a stays, being used
        assert await cache.get(key, 1, computing(key)) == key
    assert await cache.get("a", 2, computing("a2")) == "a2"  # a new revision: computed again
    assert computed == ["a", "b", "c", "b", "a2"]
