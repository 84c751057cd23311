"""Funding rates on both backends: exact rates, idempotent upserts, gaps against the exchange's
interval, Binance's archives and freqtrade's files imported, bad input refused whole."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iftb.cli import app
from iftb.data.funding_files import FundingFileError, read_funding_rates
from iftb.data.storage import DatabaseManager, FundingRate, FundingRateRepository, ValidationError
from tests.support.cli_results import ok, refused

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EIGHT_HOURS = timedelta(hours=8)


def rate(n: int, value: str = "0.0001", symbol: str = "BTCUSDT") -> FundingRate:
    return FundingRate(symbol=symbol, funding_time=T0 + n * EIGHT_HOURS, rate=Decimal(value))


async def test_rates_round_trip_to_the_last_of_twelve_places(db: DatabaseManager) -> None:
    written = [rate(0, "0.000123456789"), rate(1, "-0.0075"), rate(2, "0.03000000")]
    written[2] = replace(written[2], mark_price=Decimal("42311.12345678"))
    async with db.get_session() as session:
        assert await FundingRateRepository(session).upsert_many(written) == 3
    async with db.get_session(read_only=True) as session:
        repo = FundingRateRepository(session)
        stored = await repo.get_range("BTCUSDT", T0, T0 + 2 * EIGHT_HOURS)
        latest = await repo.get_latest("BTCUSDT", limit=2)
    assert stored == written
    assert [r.funding_time for r in latest] == [T0 + 2 * EIGHT_HOURS, T0 + EIGHT_HOURS]


async def test_an_upsert_is_idempotent_and_a_corrected_rate_replaces_the_stored(
    db: DatabaseManager,
) -> None:
    async with db.get_session() as session:
        repo = FundingRateRepository(session)
        await repo.upsert_many([rate(n) for n in range(3)])
        await repo.upsert_many([rate(n) for n in range(3)])
        await repo.upsert_many([rate(1, "0.0002"), rate(1, "0.0003")])  # the last one wins
        await repo.upsert_many([rate(1, "0.5", symbol="ETHUSDT")])  # another series
        stored = await repo.get_range("BTCUSDT", T0, T0 + 2 * EIGHT_HOURS)
    assert [r.rate for r in stored] == [Decimal("0.0001"), Decimal("0.0003"), Decimal("0.0001")]


async def test_gaps_are_the_missing_funding_times_of_the_interval(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = FundingRateRepository(session)
        await repo.upsert_many([rate(n) for n in (0, 1, 4, 5, 9)])
        whole = await repo.get_gaps("BTCUSDT")
        window = await repo.get_gaps("BTCUSDT", start=T0 - EIGHT_HOURS, end=T0 + 11 * EIGHT_HOURS)
        four_hourly = await repo.get_gaps("BTCUSDT", interval=timedelta(hours=4))
        nothing = await repo.get_gaps("SOLUSDT", start=T0, end=T0 + EIGHT_HOURS)
    assert [(g.start, g.missing) for g in whole] == [
        (T0 + 2 * EIGHT_HOURS, 2),
        (T0 + 6 * EIGHT_HOURS, 3),
    ]
    first, *_, last = window
    assert (first.start, first.end, first.missing) == (T0 - EIGHT_HOURS, T0 - EIGHT_HOURS, 1)
    assert (last.start, last.end, last.missing) == (T0 + 10 * EIGHT_HOURS, T0 + 11 * EIGHT_HOURS, 2)
    assert sum(g.missing for g in four_hourly) == (9 * 2 + 1) - 5  # every 4 h, first to last
    assert [(g.start, g.missing) for g in nothing] == [(T0, 2)]


async def test_bad_rates_are_refused_naming_the_rule_and_nothing_is_written(
    db: DatabaseManager,
) -> None:
    with pytest.raises(ValidationError, match="rate: .* decimal places"):
        rate(0, "0.0000000000001")
    with pytest.raises(ValidationError, match="funding_time"):
        FundingRate(symbol="BTCUSDT", funding_time=datetime(2024, 1, 1), rate=Decimal(0))
    with pytest.raises(ValidationError, match="mark_price: must be > 0"):
        FundingRate(symbol="X", funding_time=T0, rate=Decimal(0), mark_price=Decimal(-1))
    async with db.get_session() as session:
        repo = FundingRateRepository(session)
        with pytest.raises(ValidationError, match="row 1: expected a FundingRate, got dict"):
            await repo.upsert_many([rate(0), {"rate": 1}])  # type: ignore[list-item]
        with pytest.raises(ValidationError, match="interval: must be a positive duration"):
            await repo.get_gaps("BTCUSDT", interval=timedelta(0))
        assert await repo.get_latest("BTCUSDT") == []


def binance_archive(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "BTCUSDT-fundingRate-2024-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        body = "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
            f"{row}\n" for row in rows
        )
        archive.writestr("BTCUSDT-fundingRate-2024-01.csv", body)
    return path


def test_binance_and_freqtrade_files_import_and_list(database_url: str, tmp_path: Path) -> None:
    import pyarrow
    import pyarrow.feather as feather

    ms = int(T0.timestamp() * 1000)
    archive = binance_archive(
        tmp_path, [f"{ms + n * 28_800_000},8,0.000{n + 1}0000" for n in range(3)]
    )
    table = pyarrow.table({
        "date": pyarrow.array([T0 + 3 * EIGHT_HOURS, T0 + 5 * EIGHT_HOURS],
                              pyarrow.timestamp("ms", tz="UTC")),
        "open": [0.0001, -2.5e-05], "high": [0.0, 0.0], "low": [0.0, 0.0],
        "close": [0.0, 0.0], "volume": [0.0, 0.0],
    })  # fmt: skip
    freqtrade = tmp_path / "BTC_USDT_USDT-8h-funding_rate.feather"
    feather.write_feather(table, freqtrade)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        return ok(runner.invoke(app, [*args, "--database-url", database_url]))

    assert "3 funding rates written" in invoke(
        "import-funding-rates", str(archive), "--symbol", "BTCUSDT"
    )
    assert "2 funding rates written" in invoke(
        "import-funding-rates", str(freqtrade), "--symbol", "BTCUSDT"
    )
    listed = json.loads(invoke(
        "funding-rates", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02T16:00", "--json"
    ))  # fmt: skip
    assert [Decimal(r["rate"]) for r in listed["rates"]] == [
        Decimal("0.0001"), Decimal("0.0002"), Decimal("0.0003"), Decimal("0.0001"),
        Decimal("-0.000025"),
    ]  # fmt: skip
    assert [(g["start"], g["missing"]) for g in listed["gaps"]] == [
        ((T0 + 4 * EIGHT_HOURS).isoformat(), 1)
    ]


def test_a_malformed_funding_file_is_refused_naming_the_row(
    database_url: str, tmp_path: Path
) -> None:
    ms = int(T0.timestamp() * 1000)
    bad = binance_archive(tmp_path, [f"{ms},8,0.0001", f"{ms + 28_800_000},8,lots"])
    with pytest.raises(FundingFileError, match="row 2: rate: 'lots' is not a number"):
        read_funding_rates(bad, "BTCUSDT")
    result = CliRunner().invoke(app, ["import-funding-rates", str(bad), "--symbol", "BTCUSDT",
                                      "--database-url", database_url])  # fmt: skip
    refused(result, "row 2", "'lots'")
    listed = CliRunner().invoke(app, ["funding-rates", "BTCUSDT", "--start", "2024-01-01",
                                      "--json", "--database-url", database_url])  # fmt: skip
    assert json.loads(ok(listed))["rates"] == []
    wrong_header = tmp_path / "rates.csv"
    wrong_header.write_text("time,rate\n1,2\n")
    with pytest.raises(FundingFileError, match="rates.csv row 1: expected the header"):
        read_funding_rates(wrong_header, "BTCUSDT")
