"""``iftb-db`` driven through Typer's runner against real SQLite files and the real PostgreSQL,
with candle files cut from the real Binance sample that ships with the package."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from iftb.cli import app
from iftb.commands.common import manager_for
from iftb.commands.demo import SAMPLE_FILE
from iftb.config import get_settings
from iftb.data.candle_files import CandleFileError
from iftb.data.candle_import import import_candle_file
from iftb.data.storage import DatabaseManager, OHLCVRepository
from iftb.data.storage.migrations import head_revision

ROWS = 300

Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def sample_rows() -> list[list[str]]:
    """The first rows of the shipped Binance sample, as its 12 text fields."""
    with gzip.open(str(files("iftb") / "sample_data" / SAMPLE_FILE), "rt") as file:
        return [line.rstrip("\n").split(",") for _, line in zip(range(ROWS), file, strict=False)]


@pytest.fixture
def invoke(database_url: str) -> Invoke:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, [*args, "--database-url", database_url])

    return run


def write(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    return path


def imported(invoke: Invoke, path: Path, *extra: str, timeframe: str = "1h") -> Result:
    return invoke(
        "import-candles", str(path), "--symbol", "BTCUSDT", "--timeframe", timeframe, *extra
    )


def stored(invoke: Invoke) -> list[dict[str, object]]:
    result = invoke("coverage", "--json")
    assert result.exit_code == 0, result.output
    series: list[dict[str, object]] = json.loads(result.output)
    return series


def test_help_lists_every_command() -> None:
    output = CliRunner().invoke(app, ["--help"]).output
    for command in (
        "upgrade", "downgrade", "current", "doctor", "import-candles", "coverage", "gaps",
        "resample", "export-candles", "delete-candles", "chart", "stats", "rollup-daily",
        "equity", "events", "llm-usage", "purge", "demo",
    ):  # fmt: skip
        assert command in output


def test_binance_file_in_milliseconds_then_microseconds_is_idempotent(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    result = imported(invoke, write(tmp_path / "ms.csv", sample_rows))
    assert result.exit_code == 0, result.output
    assert f"rows read {ROWS}" in result.output and f"inserted {ROWS}" in result.output

    micro = [
        [str(int(r[0]) * 1000), *r[1:6], str(int(r[6]) * 1000 + 999), *r[7:]] for r in sample_rows
    ]
    result = imported(invoke, write(tmp_path / "us.csv", micro))
    assert result.exit_code == 0, result.output
    assert f"inserted 0 · updated {ROWS}" in result.output
    [series] = stored(invoke)
    assert series["count"] == ROWS


def test_generic_csv_freqtrade_json_zip_and_gz_hold_the_same_candles(
    invoke: Invoke, database_url: str, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    header = "date,open,high,low,close,volume,quote_volume,trades\n"
    generic = tmp_path / "generic.csv"
    generic.write_text(
        header
        + "".join(
            f"{_iso(r[0])},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]},{r[7]},{r[8]}\n"
            for r in sample_rows[:100]
        )
    )
    freqtrade = tmp_path / "BTC_USDT-1h.json"
    freqtrade.write_text(
        "[" + ",".join(f"[{r[0]},{','.join(r[1:6])}]" for r in sample_rows[100:200]) + "]"
    )
    binance = write(tmp_path / "BTCUSDT-1h.csv", sample_rows[200:])
    with zipfile.ZipFile(tmp_path / "BTCUSDT-1h.zip", "w") as archive:
        archive.write(binance, binance.name)
    gz = tmp_path / "BTCUSDT-1h.csv.gz"
    gz.write_bytes(gzip.compress(binance.read_bytes()))

    for path in (generic, freqtrade, tmp_path / "BTCUSDT-1h.zip"):
        result = imported(invoke, path)
        assert result.exit_code == 0, result.output
    result = imported(invoke, gz)
    assert f"inserted 0 · updated {ROWS - 200}" in result.output

    bars = asyncio.run(_all_bars(database_url))
    assert len(bars) == ROWS
    for bar, row in zip(bars, sample_rows, strict=True):  # every digit as in the source text
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == tuple(
            Decimal(v) for v in row[1:6]
        )
    assert bars[0].quote_volume == Decimal(sample_rows[0][7])  # the source has quote volume
    assert bars[0].trades_count is None  # and no trade counts: empty stays empty


def test_a_bad_row_names_file_and_line_and_writes_nothing(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    rows = [list(row) for row in sample_rows]
    rows[36][2] = str(Decimal(rows[36][3]) - 1)  # line 37: high below low
    path = write(tmp_path / "bad.csv", rows)

    result = imported(invoke, path)
    assert result.exit_code == 1
    assert f"{path}:37: high:" in result.output
    assert stored(invoke) == []

    result = imported(invoke, path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "rejected 1" in result.output and f"{path}:37" in result.output
    assert stored(invoke)[0]["count"] == ROWS - 1


def _two_hours_ahead_ms() -> str:
    """The open time of the candle after the next one: in the future however slow the test."""
    current = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return str(int((current + timedelta(hours=2)).timestamp()) * 1000)


BAD_LINE_37 = {
    "opens in the future": (0, _two_hours_ahead_ms, "timestamp: ", "opens in the future"),
    "before 1970": (0, lambda: "-3600", "timestamp: ", "outside the supported range"),
    "past year 9999": (0, lambda: "10" + "0" * 18, "time: ", "outside the supported range"),
    "absurd exponent": (0, lambda: "1e999999999", "time: ", "outside the supported range"),
    "trade count past BIGINT": (8, lambda: "1e30", "trades_count: ", "outside"),
}


@pytest.mark.parametrize("breakage", BAD_LINE_37.values(), ids=BAD_LINE_37.keys())
def test_a_row_breaking_any_rule_names_file_and_line_and_writes_nothing(
    invoke: Invoke,
    tmp_path: Path,
    sample_rows: list[list[str]],
    breakage: tuple[int, Callable[[], str], str, str],
) -> None:
    column, value, field, rule = breakage
    rows = [list(row) for row in sample_rows]
    rows[36][column] = value()
    path = write(tmp_path / "bad.csv", rows)

    result = imported(invoke, path)
    assert result.exit_code == 1
    assert f"{path}:37: {field}" in result.output and rule in result.output
    assert stored(invoke) == []

    result = imported(invoke, path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "rejected 1" in result.output and f"{path}:37" in result.output


def test_a_missing_file_and_a_wrong_timeframe_are_clear_errors(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    result = imported(invoke, tmp_path / "nope.csv")
    assert result.exit_code == 1 and "nope.csv: no such file" in result.output

    path = write(tmp_path / "hourly.csv", sample_rows)
    result = imported(invoke, path, timeframe="1d")
    assert result.exit_code == 1 and "not on a 1d candle boundary" in result.output
    result = imported(invoke, path, timeframe="4h")
    assert result.exit_code == 1 and "boundary" in result.output
    assert stored(invoke) == []


def test_gaps_resample_export_and_delete(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    holes = {10, 11, 12, 50}
    kept = [r for i, r in enumerate(sample_rows) if i not in holes]
    imported(invoke, write(tmp_path / "holes.csv", kept))

    result = invoke("gaps", "BTCUSDT", "1h", "--json")
    assert result.exit_code == 0, result.output
    hours = [int(row[0]) // 3_600_000 for row in kept]
    expected = [b - a - 1 for a, b in itertools.pairwise(hours) if b - a > 1]
    assert [gap["missing"] for gap in json.loads(result.output)] == expected

    result = invoke(
        "resample",
        "BTCUSDT",
        "1h",
        "4h",
        "--start",
        _iso(sample_rows[0][0]),
        "--end",
        _iso(sample_rows[-1][0]),
        "--store",
    )
    assert result.exit_code == 0, result.output
    assert "stored" in result.output
    assert {s["timeframe"] for s in stored(invoke)} == {"1h", "4h"}

    out = tmp_path / "export.csv"
    result = invoke("export-candles", "BTCUSDT", "1h", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 1 + len(kept)
    exported = [Decimal(v) for v in lines[1].split(",")[1:5]]
    assert exported == [Decimal(v) for v in sample_rows[0][1:5]]

    parquet = tmp_path / "export.parquet"
    result = invoke("export-candles", "BTCUSDT", "1h", "--out", str(parquet))
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.num_rows == len(kept)
    assert table.column("close")[0].as_py() == Decimal(sample_rows[0][4])

    start, end = _iso(sample_rows[0][0]), _iso(sample_rows[99][0])
    result = invoke("delete-candles", "BTCUSDT", "1h", "--start", start, "--end", end, "--yes")
    deleted = sum(1 for row in kept if int(row[0]) <= int(sample_rows[99][0]))
    assert result.exit_code == 0 and f"{deleted} candles deleted" in result.output


def test_chart_writes_a_png(invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]) -> None:
    imported(invoke, write(tmp_path / "c.csv", [r for i, r in enumerate(sample_rows) if i != 40]))
    out = tmp_path / "chart.png"
    result = invoke("chart", "BTCUSDT", "1h", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000  # a real drawing, not an empty canvas


def test_demo_end_to_end_twice_then_the_reports(invoke: Invoke, tmp_path: Path) -> None:
    first = invoke("demo")
    assert first.exit_code == 0, first.output
    assert "trades recorded" in first.output and "1 candle series" in first.output
    second = invoke("demo")
    assert second.exit_code == 0, second.output
    assert "already recorded" in second.output and "inserted 0" not in second.output

    for command in (
        ("stats", "--days", "100000", "--exchange", "coinbase"),
        ("llm-usage", "--by", "type"),
        ("events", "--severity", "info", "--limit", "5"),
        ("doctor",),
        ("current",),
    ):
        result = invoke(*command)
        assert result.exit_code == 0, (command, result.output)
    assert "entry_" in invoke("llm-usage", "--by", "type").output
    assert "up to date" in invoke("current").output

    out = tmp_path / "equity.png"
    assert "│ 30 " in invoke("stats", "--days", "100000", "--exchange", "coinbase").output
    result = invoke("equity", "--out", str(out), "--days", "100000", "--exchange", "coinbase")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000

    result = invoke("purge", "--events-older-than", "0d", "--llm-older-than", "0d")
    assert result.exit_code == 0 and "purged" in result.output


def test_errors_are_one_clear_line(invoke: Invoke) -> None:
    result = invoke("gaps", "BTCUSDT", "2h30")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "2h30" in result.output
    result = invoke("purge", "--events-older-than", "ninety days")
    assert result.exit_code == 1 and "not an age like 90d" in result.output
    result = CliRunner().invoke(app, ["coverage", "--database-url", "mysql://u:secret@h/db"])
    assert result.exit_code == 1 and "secret" not in result.output


async def _all_bars(database_url: str) -> list:  # type: ignore[type-arg]
    async with DatabaseManager(database_url) as manager, manager.get_session() as session:
        repo = OHLCVRepository(session)
        [coverage] = await repo.get_coverage()
        return await repo.get_range("BTCUSDT", "1h", coverage.first, coverage.last)


def _iso(milliseconds: str) -> str:
    return datetime.fromtimestamp(int(milliseconds) / 1000, UTC).isoformat()


@pytest.mark.parametrize("ahead", ["-1", "121", str(2**70)])
def test_partitions_ahead_out_of_range_is_a_clear_error(invoke: Invoke, ahead: str) -> None:
    result = invoke("partitions", "--ahead", ahead)
    assert result.exit_code == 2 and "--ahead" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_partitions_and_candle_retention(
    invoke: Invoke, database_url: str, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    imported(invoke, write(tmp_path / "p.csv", sample_rows))
    result = invoke("partitions", "--ahead", "2")
    assert result.exit_code == 0, result.output
    if database_url.startswith("sqlite"):
        assert "PostgreSQL only" in result.output
    else:
        first = datetime.fromtimestamp(int(sample_rows[0][0]) / 1000, UTC)
        assert f"ohlcv_p{first:%Y%m}01" in result.output and "partitions created" in result.output

    result = invoke("purge", "--candles-older-than", "1d")
    assert result.exit_code == 0 and f"purged {ROWS} candles" in result.output
    assert stored(invoke) == []


def test_schema_commands_walk_the_revisions(invoke: Invoke) -> None:
    result = invoke("downgrade", "base")
    assert result.exit_code == 0 and "revision base" in result.output, result.output
    assert "database: empty" in invoke("current").output
    result = invoke("upgrade")
    assert result.exit_code == 0 and f"revision {head_revision()}" in result.output, result.output
    assert "up to date" in invoke("current").output


def test_rollup_daily_stores_a_day_from_the_closed_trades(invoke: Invoke) -> None:
    assert invoke("demo", "--days", "3").exit_code == 0
    result = invoke(
        "rollup-daily", "--date", "2019-10-15", "--exchange", "coinbase",
        "--starting-balance", "10000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "total trades" in result.output and "ending balance" in result.output
    result = invoke("rollup-daily", "--date", "not-a-day")
    assert result.exit_code == 1 and "--date" in result.output


def test_commands_take_pool_retries_and_limits_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_LOCK_TIMEOUT", "3")
    monkeypatch.setenv("DB_RETRY_ATTEMPTS", "2")
    get_settings.cache_clear()
    try:
        manager = manager_for("postgresql://bot@db.internal:6432/iftb", auto_migrate=False)
    finally:
        get_settings.cache_clear()
    assert (manager.timeouts.lock, manager.retry_policy.attempts) == (3, 2)
    assert manager.safe_url == "postgresql+asyncpg://bot@db.internal:6432/iftb"


def test_gaps_of_a_series_not_stored_is_an_error_naming_those_stored(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    """``gaps BTCUSD 1h`` on a store of other series printed "no gaps" and exit 0; the exchange
    defaulted to binance, so right after the demo (coinbase) nothing was found either."""
    result = invoke("gaps", "BTCUSDT", "1h")
    assert result.exit_code == 1 and "the store holds no candles" in result.output
    imported(invoke, write(tmp_path / "a.csv", sample_rows[:30]), "--exchange", "coinbase")
    result = invoke("gaps", "BTCUSDT", "1h")  # the one exchange storing it: found
    assert result.exit_code == 0 and "no gaps" in result.output
    result = invoke("gaps", "BTCUSD", "1h")
    assert result.exit_code == 1
    assert "no candles stored for BTCUSD 1h; stored: BTCUSDT 1h coinbase" in result.output
    result = invoke("gaps", "BTCUSDT", "1h", "--exchange", "binance")
    assert result.exit_code == 1 and "no candles stored for BTCUSDT 1h" in result.output
    imported(invoke, write(tmp_path / "b.csv", sample_rows[:30]), "--exchange", "binance")
    result = invoke("gaps", "BTCUSDT", "1h")
    assert result.exit_code == 1
    assert "stored on several exchanges (binance, coinbase): pass --exchange" in result.output
    assert invoke("gaps", "BTCUSDT", "1h", "--exchange", "binance").exit_code == 0


def _damaged_files(tmp_path: Path, rows: list[list[str]]) -> dict[str, tuple[Path, str]]:
    """Each damaged or ambiguous file a user may meet, and what its error must say."""
    binance = write(tmp_path / "BTCUSDT-1h.csv", rows)
    several = tmp_path / "several.zip"
    with zipfile.ZipFile(several, "w") as archive:
        archive.write(binance, "BTCUSDT-1h.csv")
        archive.write(binance, "ETHUSDT-1h.csv")
    corrupt = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(corrupt, "w", zipfile.ZIP_STORED) as archive:
        archive.write(binance, "BTCUSDT-1h.csv")
    data = bytearray(corrupt.read_bytes())
    at = data.rindex(b",", 0, len(data) - 200)  # near the member's end: read, then its CRC fails
    data[at] = ord(";")
    corrupt.write_bytes(bytes(data))
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(binance.read_bytes())[:-40])
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    twice = [*rows[:5], [*rows[2][:5], "999", *rows[2][6:]], *rows[5:8]]  # line 3's volume
    changed = write(tmp_path / "twice.csv", twice)
    return {
        "several members": (several, "the zip archive holds 2 files (BTCUSDT-1h.csv, ETHUSDT"),
        "bad CRC": (corrupt, "Bad CRC-32"),
        "truncated gz": (truncated, "the compressed file is cut short"),
        "nested JSON": (nested, "the JSON is nested too deep"),
        "one candle twice": (changed, "is also on line 3, with other values"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case", ["several members", "bad CRC", "truncated gz", "nested JSON", "one candle twice"]
)
def test_a_damaged_or_ambiguous_file_is_one_clear_error_and_writes_nothing(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]], case: str
) -> None:
    """A zip of several files imported the first and ignored the rest (exit 0); a bad CRC and
    deep JSON gave tracebacks; a cut .gz printed only "Aborted."; one candle twice with other
    values was taken (the last won)."""
    path, reason = _damaged_files(tmp_path, sample_rows[:300])[case]
    extra = ("--format", "freqtrade-json") if case == "nested JSON" else ()
    result = imported(invoke, path, *extra)
    assert result.exit_code == 1, result.output
    assert reason in " ".join(result.output.split()) and "Traceback" not in result.output
    assert "Aborted" not in result.output
    assert stored(invoke) == []


def test_the_same_candle_twice_with_the_same_values_is_a_harmless_repeat(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    path = write(tmp_path / "repeat.csv", [*sample_rows[:5], sample_rows[4], *sample_rows[5:9]])
    assert imported(invoke, path).exit_code == 0
    assert [s["count"] for s in stored(invoke)] == [9]


def test_export_refuses_what_it_cannot_write_and_writes_nothing(
    invoke: Invoke, tmp_path: Path, sample_rows: list[list[str]]
) -> None:
    """A series not stored wrote an empty file and exit 0; ``--out x.json`` wrote CSV; a
    missing directory was reported as "database unavailable"."""
    imported(invoke, write(tmp_path / "a.csv", sample_rows[:20]), "--exchange", "coinbase")
    cases = [
        (("BTCUSD", "1h", "--out", str(tmp_path / "x.csv")), "no candles stored for BTCUSD 1h"),
        (("BTCUSDT", "1h", "--out", str(tmp_path / "x.json")), "x.json is not a .csv, .parquet"),
        (("BTCUSDT", "1h", "--out", str(tmp_path / "nowhere" / "x.csv")), "--out: no directory"),
    ]
    for arguments, reason in cases:
        result = invoke("export-candles", *arguments)
        assert result.exit_code == 1 and reason in " ".join(result.output.split()), result.output
        assert "database unavailable" not in result.output
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.json").exists()
    out = tmp_path / "found.csv"  # the one exchange storing it, without --exchange
    assert invoke("export-candles", "BTCUSDT", "1h", "--out", str(out)).exit_code == 0
    assert len(out.read_text().splitlines()) == 21


@pytest.mark.parametrize("kind", ["csv", "feather"])
async def test_a_bad_row_after_the_first_chunk_writes_nothing(
    db: DatabaseManager, tmp_path: Path, sample_rows: list[list[str]], kind: str
) -> None:
    """A bad row after the first chunk left the earlier chunks written (20,000 rows of a CSV,
    30,000 of a freqtrade feather file, in chunks of 10,000): a file is one unit now. Here in
    chunks of 50, the bad row in the sixth."""
    rows = [list(row) for row in sample_rows]
    rows[280][2] = "-5"  # a negative high
    if kind == "csv":
        path = write(tmp_path / "BTCUSDT-1h.csv", rows)
    else:
        path = _feather(tmp_path / "BTC_USDT-1h.feather", rows)
    with pytest.raises(CandleFileError, match=":281: high|row 281: high"):
        await import_candle_file(db, path, "BTCUSDT", "1h", chunk_size=50)
    async with db.get_session(read_only=True) as session:
        assert await OHLCVRepository(session).get_inventory() == []
    rows[280][2] = rows[280][1] if float(rows[280][1]) >= float(rows[280][4]) else rows[280][4]
    fixed = write(tmp_path / "BTCUSDT-1h.csv", rows) if kind == "csv" else _feather(path, rows)
    summary = await import_candle_file(db, fixed, "BTCUSDT", "1h", chunk_size=50)
    assert (summary.rows, summary.inserted, summary.updated) == (300, 300, 0)


def _feather(path: Path, rows: list[list[str]]) -> Path:
    import pandas

    prices = ("open", "high", "low", "close", "volume")
    pandas.DataFrame(
        {
            "date": pandas.to_datetime([int(row[0]) for row in rows], unit="ms", utc=True),
            **{name: [float(row[i]) for row in rows] for i, name in enumerate(prices, start=1)},
        }
    ).to_feather(path)
    return path
