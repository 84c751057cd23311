"""Funding-rate files as exchanges and other bots publish them, read as validated FundingRates.

Formats:
- ``binance``: data.binance.vision's monthly ``fundingRate`` archives
  (``BTCUSDT-fundingRate-2024-01.zip``): a CSV with the header
  ``calc_time,funding_interval_hours,last_funding_rate``, times in epoch milliseconds. Rates are
  parsed from their text, so no digit is lost.
- ``freqtrade``: freqtrade's funding-rate candle files (``BTC_USDT_USDT-8h-funding_rate``, as
  ``.feather``, ``.parquet`` or ``.json``): the rate is the candle's ``open``. Feather and Parquet
  need pyarrow (``pip install 'iftb[parquet]'``). Their rates are floats: each is taken at its
  shortest decimal form and rounded to the column's 12 places.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Literal

from iftb.data.storage import FundingRate, ValidationError

FundingFormat = Literal["auto", "binance", "freqtrade"]
FUNDING_FORMATS: tuple[FundingFormat, ...] = ("auto", "binance", "freqtrade")
_RATE_PLACES = Decimal("1e-12")
_BINANCE_HEADER = ["calc_time", "funding_interval_hours", "last_funding_rate"]


class FundingFileError(ValueError):
    """A funding-rate file that cannot be read, naming the file, the row and the reason."""

    def __init__(self, path: Path, row: int | None, reason: str) -> None:
        self.path, self.row, self.reason = path, row, reason
        where = f"{path.name}" + (f" row {row}" if row is not None else "")
        super().__init__(f"{where}: {reason}")


def read_funding_rates(
    path: Path, symbol: str, exchange: str = "binance", file_format: FundingFormat = "auto"
) -> list[FundingRate]:
    """Every rate of ``path``, checked: a malformed row is an error naming it, before any rate
    is returned (so nothing of the file is written)."""
    if not path.is_file():
        raise FundingFileError(path, None, "no such file")
    if file_format not in FUNDING_FORMATS:
        raise FundingFileError(path, None, f"unknown format {file_format!r}")
    rows = _binance_rows(path) if _is_binance(path, file_format) else _freqtrade_rows(path)
    rates = []
    for row, (moment, rate) in enumerate(rows, start=1):
        try:
            rates.append(
                FundingRate(symbol=symbol, exchange=exchange, funding_time=moment, rate=rate)
            )
        except ValidationError as exc:
            raise FundingFileError(path, row, str(exc)) from None
    return rates


def _is_binance(path: Path, file_format: FundingFormat) -> bool:
    if file_format != "auto":
        return file_format == "binance"
    return path.suffix.lower() in (".csv", ".zip")


def _binance_rows(path: Path) -> Iterator[tuple[datetime, Decimal]]:
    with _opened_text(path) as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None or [name.strip() for name in header] != _BINANCE_HEADER:
            raise FundingFileError(
                path, 1, f"expected the header {','.join(_BINANCE_HEADER)}, found {header}"
            )
        for row, fields in enumerate(reader, start=1):
            if len(fields) != 3:
                raise FundingFileError(path, row, f"expected 3 columns, found {len(fields)}")
            yield _epoch_ms(path, row, fields[0]), _text_rate(path, row, fields[2])


@contextmanager
def _opened_text(path: Path) -> Iterator[IO[str]]:
    """The file's text: the first member of a ``.zip``, else the file itself."""
    if path.suffix.lower() != ".zip":
        with path.open(newline="", encoding="utf-8") as text:
            yield text
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise FundingFileError(path, None, "not a zip archive") from None
    with archive:
        members = archive.namelist()
        if not members:
            raise FundingFileError(path, None, "the archive is empty")
        with io.TextIOWrapper(archive.open(members[0]), newline="", encoding="utf-8") as text:
            yield text


def _freqtrade_rows(path: Path) -> Iterator[tuple[datetime, Decimal]]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            candles = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FundingFileError(path, None, f"not JSON: {exc.msg}") from None
        if not isinstance(candles, list):
            raise FundingFileError(path, None, "expected a list of candles")
        pairs: Iterable[tuple[Any, Any]] = (
            (c[0], c[1]) if isinstance(c, list) and len(c) >= 2 else (None, None) for c in candles
        )
        for row, (moment, rate) in enumerate(pairs, start=1):
            yield _epoch_ms(path, row, moment), _float_rate(path, row, rate)
        return
    table = _arrow_table(path, suffix)
    if "date" not in table.column_names or "open" not in table.column_names:
        raise FundingFileError(
            path, None, f"expected date and open columns, found {table.column_names}"
        )
    dates, opens = table.column("date").to_pylist(), table.column("open").to_pylist()
    for row, (moment, rate) in enumerate(zip(dates, opens, strict=True), start=1):
        if not isinstance(moment, datetime):
            raise FundingFileError(path, row, f"date: {moment!r} is not a time")
        yield (
            (moment if moment.tzinfo else moment.replace(tzinfo=UTC)),
            _float_rate(path, row, rate),
        )


def _arrow_table(path: Path, suffix: str) -> Any:
    try:
        import pyarrow.feather as feather
        import pyarrow.parquet as parquet
    except ImportError:
        raise FundingFileError(
            path,
            None,
            "freqtrade's feather and parquet files need pyarrow: pip install 'iftb[parquet]'",
        ) from None
    if suffix not in (".feather", ".parquet"):
        raise FundingFileError(path, None, "freqtrade files are .feather, .parquet or .json")
    try:
        return feather.read_table(path) if suffix == ".feather" else parquet.read_table(path)
    except Exception as exc:
        raise FundingFileError(path, None, f"cannot read it: {exc}") from None


def _epoch_ms(path: Path, row: int, value: Any) -> datetime:
    try:
        milliseconds = int(value)
        return datetime.fromtimestamp(milliseconds / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise FundingFileError(path, row, f"time: {value!r} is not epoch milliseconds") from None


def _text_rate(path: Path, row: int, text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise FundingFileError(path, row, f"rate: {text!r} is not a number") from None


def _float_rate(path: Path, row: int, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FundingFileError(path, row, f"rate: {value!r} is not a number")
    rate = Decimal(repr(value))
    if not rate.is_finite():
        raise FundingFileError(path, row, f"rate: {value!r} is not a finite number")
    return rate.quantize(_RATE_PLACES, rounding=ROUND_HALF_EVEN)
