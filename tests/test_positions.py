"""PositionRepository on both backends: one open position per side, enforced by the database."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.data.storage import (
    ConflictError,
    DatabaseManager,
    NotFoundError,
    PositionRepository,
    StorageError,
    ValidationError,
)
from tests.factories import make_position


async def test_update_position_inserts_then_updates(session: AsyncSession) -> None:
    repo = PositionRepository(session)
    stored = await repo.update_position(make_position())
    assert stored.id is not None
    assert stored.status == "open"
    stored.stop_loss = Decimal("39000")
    again = await repo.update_position(stored)
    assert (again.id, again.stop_loss) == (stored.id, Decimal("39000"))
    assert await repo.get_open_positions() == [again]


async def test_a_second_open_position_on_the_same_side_is_a_conflict(session: AsyncSession) -> None:
    repo = PositionRepository(session)
    await repo.update_position(make_position())
    with pytest.raises(ConflictError):
        await repo.update_position(make_position())
    assert len(await repo.get_open_positions()) == 1


async def test_long_and_short_may_be_open_together(session: AsyncSession) -> None:
    repo = PositionRepository(session)
    await repo.update_position(make_position(side="long"))
    await repo.update_position(make_position(side="short"))
    assert {p.side for p in await repo.get_open_positions()} == {"long", "short"}
    short = await repo.get_position("BTCUSDT", side="short")
    assert short is not None and short.side == "short"
    with pytest.raises(ValidationError, match="side: both long and short"):
        await repo.get_position("BTCUSDT")


async def test_get_position_without_an_open_one_is_none(session: AsyncSession) -> None:
    assert await PositionRepository(session).get_position("BTCUSDT") is None


async def test_closing_frees_the_side_for_a_new_position(session: AsyncSession) -> None:
    repo = PositionRepository(session)
    first = await repo.update_position(make_position())
    assert first.id is not None
    closed = await repo.close_position(first.id, exit_price=Decimal("41000"))
    assert (closed.status, closed.current_price, closed.unrealized_pnl) == (
        "closed",
        Decimal("41000"),
        Decimal("100"),
    )
    await repo.update_position(make_position())
    assert len(await repo.get_open_positions()) == 1


async def test_closing_twice_or_a_missing_position_is_refused(session: AsyncSession) -> None:
    repo = PositionRepository(session)
    position = await repo.update_position(make_position())
    assert position.id is not None
    await repo.close_position(position.id, status="liquidated")
    with pytest.raises(ConflictError, match="already liquidated"):
        await repo.close_position(position.id)
    with pytest.raises(NotFoundError):
        await repo.close_position(9999)
    with pytest.raises(NotFoundError):
        await repo.update_position(make_position(id=9999))


async def test_mark_to_market_revalues_every_open_position_on_the_symbol(
    session: AsyncSession,
) -> None:
    repo = PositionRepository(session)
    await repo.update_position(make_position(side="long"))  # 0.1 @ 40000, margin 800
    await repo.update_position(
        make_position(side="short", quantity=Decimal("0.2"), margin=Decimal("1600"))
    )
    await repo.update_position(make_position(symbol="ETHUSDT", entry_price=Decimal("2000")))
    assert await repo.mark_to_market("BTCUSDT", Decimal("40123.45678901")) == 2
    by_side = {p.side: p for p in await repo.get_open_positions() if p.symbol == "BTCUSDT"}
    assert by_side["long"].unrealized_pnl == Decimal("12.34567890")
    assert by_side["long"].unrealized_pnl_pct == Decimal("1.5432")
    assert by_side["short"].unrealized_pnl == Decimal("-24.69135780")
    assert by_side["short"].current_price == Decimal("40123.45678901")
    eth = await repo.get_position("ETHUSDT")
    assert eth is not None and eth.current_price is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"side": "up"}, "side"),
        ({"quantity": Decimal(0)}, "quantity"),
        ({"status": "gone"}, "status"),
    ],
)
async def test_bad_positions_are_refused(
    session: AsyncSession, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: "):
        await PositionRepository(session).update_position(make_position(**fields))


@pytest.mark.postgres_only
async def test_of_twenty_racing_writers_exactly_one_opens_the_position(db: DatabaseManager) -> None:
    async def open_position() -> str:
        try:
            async with db.get_session() as session:
                await PositionRepository(session).update_position(make_position())
        except ConflictError:
            return "conflict"
        except StorageError as exc:  # anything else would be a bug
            return f"other: {exc!r}"
        return "opened"

    outcomes = await asyncio.gather(*(open_position() for _ in range(20)))
    assert sorted(outcomes) == ["conflict"] * 19 + ["opened"]
    async with db.get_session() as session:
        assert len(await PositionRepository(session).get_open_positions()) == 1
