"""Price types in the candle series key: trade (the default), mark, index and premium index
candles of one symbol side by side, each its own series, on both backends."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from iftb.cli import app
from iftb.data.storage import (
    ConflictError,
    DatabaseManager,
    OHLCVBar,
    OHLCVModel,
    OHLCVRepository,
    ValidationError,
)
from tests.support.cli_results import ok, refused
from tests.test_ohlcv_repository import T0, hourly

KINDS = ("trade", "mark", "index", "premium_index")


def of_kind(bars: list[OHLCVBar], price_type: str) -> list[OHLCVBar]:
    return [replace(bar, price_type=price_type) for bar in bars]


async def test_each_price_type_is_its_own_series_and_trade_is_the_default(
    db: DatabaseManager,
) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.insert_many(hourly(24))  # existing calls: trade candles
        for kind in KINDS[1:]:
            await repo.insert_many(of_kind(hourly(24, skip={5}), kind))
    end = T0 + timedelta(hours=23)
    async with db.get_session(read_only=True) as session:
        repo = OHLCVRepository(session)
        trade = await repo.get_range("BTCUSDT", "1h", T0, end)
        assert len(trade) == 24 and {bar.price_type for bar in trade} == {"trade"}
        for kind in KINDS[1:]:
            bars = await repo.get_range("BTCUSDT", "1h", T0, end, price_type=kind)
            assert len(bars) == 23 and {bar.price_type for bar in bars} == {kind}
            assert await repo.count_range("BTCUSDT", "1h", T0, end, price_type=kind) == 23
            gaps = await repo.get_gaps("BTCUSDT", "1h", price_type=kind)
            assert [(g.start, g.missing) for g in gaps] == [(T0 + timedelta(hours=5), 1)]
            latest = await repo.get_latest("BTCUSDT", "1h", limit=1, price_type=kind)
            assert latest[0].price_type == kind
        assert await repo.get_gaps("BTCUSDT", "1h") == []
        coverage = await repo.get_coverage(symbol="BTCUSDT")
        assert sorted((c.price_type, c.count) for c in coverage) == sorted(
            [("trade", 24), ("mark", 23), ("index", 23), ("premium_index", 23)]
        )
        only_mark = await repo.get_coverage(price_type="mark")
        assert [(c.price_type, c.missing) for c in only_mark] == [("mark", 1)]
        built = await repo.resample("BTCUSDT", "1h", "4h", T0, end, price_type="mark")
        assert {r.bar.price_type for r in built} == {"mark"} and len(built) == 5


async def test_an_upsert_touches_only_its_own_price_type(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.insert_many(hourly(3))
        await repo.upsert_many(of_kind(hourly(3, price="200"), "mark"))
        await repo.upsert_many(of_kind(hourly(3, price="300"), "mark"))
        trade = await repo.get_range("BTCUSDT", "1h", T0, T0 + timedelta(hours=2))
        mark = await repo.get_range("BTCUSDT", "1h", T0, T0 + timedelta(hours=2), price_type="mark")
    assert {bar.open for bar in trade} == {Decimal(100)}
    assert {bar.open for bar in mark} == {Decimal(300)}


async def test_premium_index_candles_may_be_negative_and_only_they(db: DatabaseManager) -> None:
    premium = OHLCVBar(
        symbol="BTCUSDT", exchange="binance", timeframe="1h", timestamp=T0,
        open=Decimal("-0.00012"), high=Decimal("0.00003"), low=Decimal("-0.0002"),
        close=Decimal("0"), volume=Decimal(0), price_type="premium_index",
    )  # fmt: skip
    async with db.get_session() as session:
        await OHLCVRepository(session).insert_many([premium])
        stored = await OHLCVRepository(session).get_latest(
            "BTCUSDT", "1h", price_type="premium_index"
        )
    assert stored == [premium]
    for kind in ("trade", "mark", "index"):
        with pytest.raises(ValidationError, match="open: must be > 0"):
            replace(premium, price_type=kind)


async def test_an_unknown_price_type_is_refused_everywhere(db: DatabaseManager) -> None:
    with pytest.raises(ValidationError, match="price_type: 'last' is not one of") as refused_bar:
        replace(hourly(1)[0], price_type="last")
    assert refused_bar.value.field == "price_type"
    async with db.get_session(read_only=True) as session:
        repo = OHLCVRepository(session)
        with pytest.raises(ValidationError, match="price_type: 'last' is not one of"):
            await repo.get_range("BTCUSDT", "1h", T0, T0, price_type="last")
        with pytest.raises(ValidationError, match="price_type: 'Mark' is not one of"):
            await repo.get_gaps("BTCUSDT", "1h", price_type="Mark")


async def test_the_database_refuses_an_unknown_price_type_written_around_the_layer(
    db: DatabaseManager,
) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).insert_many(hourly(1))
    async with db.get_session() as session:
        with pytest.raises(Exception, match="(?i)check"):
            await session.execute(update(OHLCVModel).values(price_type="last"))


async def test_deleting_one_price_type_keeps_the_others_even_in_whole_partitions(
    db: DatabaseManager,
) -> None:
    """On PostgreSQL a partition wholly inside the range holding only the named series is
    dropped whole: it must not be, while another price type of the same symbol lives there."""
    month = [T0 + timedelta(hours=h) for h in range(0, 31 * 24, 6)]  # all of January
    bars = [replace(hourly(1)[0], timestamp=at) for at in month]
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.insert_many(bars)
        await repo.insert_many(of_kind(bars, "mark"))
        end = T0 + timedelta(days=40)
        deleted = await repo.delete_range("BTCUSDT", "1h", T0, end, price_type="mark")
        left = await session.execute(
            select(OHLCVModel.price_type, func.count()).group_by(OHLCVModel.price_type)
        )
    assert deleted == len(month)
    assert dict(left.all()) == {"trade": len(month)}


def _kline_archive(directory: Path, rows: list[str]) -> Path:
    directory.mkdir(parents=True)
    path = directory / "BTCUSDT-1h-2024-01.zip"
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    header += "taker_buy_volume,taker_buy_quote_volume,ignore\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1h-2024-01.csv", header + "".join(f"{r}\n" for r in rows))
    return path


def test_binance_mark_and_premium_index_archives_import_as_their_price_type(
    database_url: str, tmp_path: Path
) -> None:
    start = int(T0.timestamp() * 1000)
    mark = _kline_archive(
        tmp_path / "futures/um/monthly/markPriceKlines/BTCUSDT/1h",
        [f"{start + h * 3_600_000},4231{h}.1,4240{h}.0,4220{h}.5,4235{h}.2,0,0,0,60,0,0,0"
         for h in range(3)],
    )  # fmt: skip
    premium = _kline_archive(
        tmp_path / "futures/um/monthly/premiumIndexKlines/BTCUSDT/1h",
        [f"{start},-0.00012000,0.00003000,-0.00020000,-0.00005000,0,0,0,60,0,0,0"],
    )
    runner = CliRunner()

    def invoke(*args: str) -> str:
        return ok(runner.invoke(app, [*args, "--database-url", database_url]))

    for path in (mark, premium):
        invoke("import-candles", str(path), "--symbol", "BTCUSDT", "--timeframe", "1h")
    as_index = invoke(
        "import-candles", str(mark), "--symbol", "BTCUSDT", "--timeframe", "1h",
        "--price-type", "index",
    )  # fmt: skip
    assert "inserted 3" in as_index
    listed = invoke("coverage", "--json")
    assert '"price_type": "mark"' in listed and '"price_type": "premium_index"' in listed
    gaps = invoke("gaps", "BTCUSDT", "1h", "--price-type", "mark", "--json")
    assert gaps.strip() == "[]"
    bad = runner.invoke(app, ["gaps", "BTCUSDT", "1h", "--price-type", "last",
                              "--database-url", database_url])  # fmt: skip
    refused(bad, "price_type", "'last'")


async def test_the_downgrade_refuses_while_other_price_types_are_stored(
    db: DatabaseManager,
) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).insert_many(of_kind(hourly(2), "mark"))
    with pytest.raises(ConflictError, match="2 candles are mark, index or premium index"):
        await db.downgrade("0007")
