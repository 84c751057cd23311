"""Candle files as published by exchanges and used by other bots, read as validated OHLCVBars.

Formats:
- ``binance``: the kline CSVs of data.binance.vision — 12 columns, open time in epoch milliseconds
  (spot files switched to microseconds in 2025: told apart by magnitude, per row), no header
  (futures files carry an ``open_time,...`` header, which is skipped).
- ``csv``: a CSV with a header naming ``timestamp`` (or ``date``/``time``/``open_time``), ``open``,
  ``high``, ``low``, ``close``, ``volume`` and optionally ``quote_volume`` and ``trades_count``;
  times in epoch seconds, milliseconds or microseconds, or ISO 8601 with a zone.
- ``freqtrade-json``: freqtrade's candle files, ``[[ms, open, high, low, close, volume], ...]``.
- ``freqtrade``: freqtrade's feather (its default) and parquet candle files (``freqtrade_files``),
  futures candle types included.

Binance's mark-price, index-price and premium-index kline archives have the kline layout: their
candles take the price type their directory names (``price_type_of``), or the one given.

``.zip`` (the first member) and ``.gz`` files are read directly. Reading streams: CSVs are never
loaded whole. Prices are parsed from their text (JSON numbers too) so no digit is lost.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

from iftb.data.freqtrade_files import (
    FreqtradeFileError,
    freqtrade_price_type,
    freqtrade_rows,
    is_freqtrade_file,
)
from iftb.data.storage import OHLCVBar, PriceType, ValidationError, parse_timeframe
from iftb.data.storage.validation import aware_utc, candle_opened_rule

FileFormat = Literal["auto", "binance", "csv", "freqtrade-json", "freqtrade"]
FORMATS: tuple[FileFormat, ...] = ("auto", "binance", "csv", "freqtrade-json", "freqtrade")

_TIME_COLUMNS = ("timestamp", "date", "time", "datetime", "open_time")
_OPTIONAL_COLUMNS = {
    "quote_volume": ("quote_volume", "quote_asset_volume"),
    "trades_count": ("trades_count", "trades", "number_of_trades", "count"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_LIMIT = 10**20  # microseconds past year 9999 (and seconds far beyond): out of range
_OHLCV = ("time", "open", "high", "low", "close", "volume")


class CandleFileError(ValueError):
    """A file that cannot be read as candles, naming the file, the line and the reason."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


class WrongTimeframeError(ValidationError):
    """Rows closer together than one candle: the file holds a smaller timeframe."""


@dataclass(slots=True)
class CandleChunk:
    """Up to ``chunk_size`` valid bars, the rows skipped as invalid, and the reading position."""

    bars: list[OHLCVBar] = field(default_factory=list)
    rejected: list[CandleFileError] = field(default_factory=list)
    rows: int = 0
    bytes_read: int = 0


@dataclass(frozen=True, slots=True)
class _Series:
    symbol: str
    timeframe: str
    exchange: str
    price_type: str


def read_candles(
    path: Path,
    symbol: str,
    timeframe: str,
    exchange: str = "binance",
    *,
    file_format: FileFormat = "auto",
    chunk_size: int = 10_000,
    skip_invalid: bool = False,
    price_type: str | None = None,
) -> Iterator[CandleChunk]:
    """Read ``path`` in chunks of valid bars.

    A malformed row raises ``CandleFileError`` (file, line, reason) before its chunk is yielded,
    so nothing of that chunk reaches the database; with ``skip_invalid`` it is counted in the
    chunk's ``rejected`` instead. Rows closer together than one ``timeframe`` candle, or off its
    boundaries, mean the file holds another timeframe: always an error. ``price_type`` is what
    the prices are; None reads it from a Binance archive's path (``price_type_of``).
    """
    if not path.is_file():
        raise CandleFileError(path, None, "no such file")
    parse_timeframe(timeframe)  # an unknown timeframe is an error before any reading
    resolved = _resolve_format(path, file_format)
    try:
        series = _Series(symbol, timeframe, exchange, price_type or price_type_of(path))
    except FreqtradeFileError as exc:
        raise CandleFileError(path, None, str(exc)) from None
    with path.open("rb") as raw:
        if resolved == "freqtrade":
            rows = _freqtrade(path)
        else:
            text = _decompressed_text(path, raw)
            rows = (
                _json_rows(text)
                if resolved == "freqtrade-json"
                else _csv_rows(path, text, resolved)
            )
        yield from _chunks(path, rows, series, chunk_size, skip_invalid, raw)


def _freqtrade(path: Path) -> Iterator[Row]:
    try:
        yield from freqtrade_rows(path)
    except FreqtradeFileError as exc:
        raise CandleFileError(path, None, str(exc)) from None


BINANCE_KLINE_KINDS = {
    "markPriceKlines": PriceType.MARK,
    "indexPriceKlines": PriceType.INDEX,
    "premiumIndexKlines": PriceType.PREMIUM_INDEX,
}
"""data.binance.vision's archives of futures klines other than trades, by directory name: the
same 12-column layout as its klines."""


def price_type_of(path: Path) -> PriceType:
    """The price type a file's path states: a Binance futures kline archive's directory
    (``.../markPriceKlines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip`` holds mark candles) or a
    freqtrade file's candle type (``BTC_USDT_USDT-1h-mark.feather``); trade candles otherwise."""
    if is_freqtrade_file(path):
        return freqtrade_price_type(path) or PriceType.TRADE
    for part in path.parts:
        if part in BINANCE_KLINE_KINDS:
            return BINANCE_KLINE_KINDS[part]
    return PriceType.TRADE


# --- formats -------------------------------------------------------------------------------


def _resolve_format(path: Path, file_format: FileFormat) -> FileFormat:
    if file_format not in FORMATS:
        raise CandleFileError(path, None, f"unknown format {file_format!r}")
    if file_format != "auto":
        return file_format
    if is_freqtrade_file(path):
        return "freqtrade"
    name = path.name.lower().removesuffix(".gz").removesuffix(".zip")
    return "freqtrade-json" if name.endswith(".json") else "auto"  # CSVs told apart by header


def _decompressed_text(path: Path, raw: IO[bytes]) -> IO[str]:
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8-sig", newline="")
        if name.endswith(".zip"):
            archive = zipfile.ZipFile(raw)
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if not members:
                raise CandleFileError(path, None, "the zip archive is empty")
            if len(members) > 1:
                shown = ", ".join(members[:5]) + (", ..." if len(members) > 5 else "")
                raise CandleFileError(
                    path, None, f"the zip archive holds {len(members)} files ({shown}): "
                    "import one series per archive (unpack it and import each file)"
                )  # fmt: skip
            member = archive.open(members[0])
            return io.TextIOWrapper(member, encoding="utf-8-sig", newline="")
    except (OSError, zipfile.BadZipFile) as exc:
        raise CandleFileError(path, None, f"cannot open: {exc}") from None
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


Row = tuple[int, dict[str, Any]]
"""A source line (or JSON element) number and the raw candle fields, still text."""


def _csv_rows(path: Path, text: IO[str], file_format: FileFormat) -> Iterator[Row]:
    reader = csv.reader(text)
    try:
        first = next(reader, None)
    except _UNREADABLE as exc:
        raise CandleFileError(path, 1, f"not a CSV file: {_reason(exc)}") from None
    if first is None:
        return
    has_header = bool(first) and not _looks_numeric(first[0])
    if file_format == "binance" or (file_format == "auto" and not has_header):
        rows: Iterator[Row] = _binance_rows(reader)
        if not has_header:
            rows = _chain_first(first, rows)
        elif first[0].strip().lower() != "open_time":
            raise CandleFileError(path, 1, f"unexpected header for a Binance file: {first[:3]}")
    else:
        if not has_header:
            raise CandleFileError(path, 1, "a generic CSV needs a header line")
        rows = _header_rows(path, first, reader)
    try:
        yield from rows
    except _UNREADABLE as exc:
        raise CandleFileError(path, reader.line_num, f"unreadable: {_reason(exc)}") from None


_UNREADABLE = (UnicodeDecodeError, csv.Error, OSError, EOFError, zipfile.BadZipFile)
"""What reading a file's text can raise: bad text, a damaged archive (a bad CRC), a truncated
compressed file (``EOFError``, which the command line would otherwise report as "Aborted.")."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return f"the compressed file is cut short ({exc})"
    return str(exc) or type(exc).__name__


def _chain_first(first: list[str], rest: Iterator[Row]) -> Iterator[Row]:
    yield _binance_row(1, first)
    yield from rest


def _binance_rows(reader: Any) -> Iterator[Row]:
    for fields in reader:
        if fields:
            yield _binance_row(reader.line_num, fields)


def _binance_row(line: int, fields: list[str]) -> Row:
    if len(fields) < 6:
        return line, {"_error": f"expected 12 Binance kline columns, found {len(fields)}"}
    values: dict[str, Any] = dict(zip(_OHLCV, fields[:6], strict=True))
    if len(fields) >= 9:
        values["quote_volume"], values["trades_count"] = fields[7], fields[8]
    return line, values


def _header_rows(path: Path, header: list[str], reader: Any) -> Iterator[Row]:
    names = [name.strip().lower() for name in header]
    columns: dict[str, int] = {}
    time_column = next((c for c in _TIME_COLUMNS if c in names), None)
    if time_column is None:
        raise CandleFileError(
            path, 1, f"no time column: expected one of {', '.join(_TIME_COLUMNS)}"
        )
    columns["time"] = names.index(time_column)
    for required in ("open", "high", "low", "close", "volume"):
        if required not in names:
            raise CandleFileError(path, 1, f"missing column {required!r}")
        columns[required] = names.index(required)
    for target, aliases in _OPTIONAL_COLUMNS.items():
        found = next((alias for alias in aliases if alias in names), None)
        if found is not None:
            columns[target] = names.index(found)
    width = max(columns.values()) + 1
    for fields in reader:
        if not fields:
            continue
        if len(fields) < width:
            yield reader.line_num, {"_error": f"expected {len(names)} columns, found {len(fields)}"}
            continue
        yield reader.line_num, {name: fields[index] for name, index in columns.items()}


def _json_rows(text: IO[str]) -> Iterator[Row]:
    """freqtrade candles; the file is one JSON array, parsed with exact decimals."""
    try:
        document = json.load(text, parse_float=Decimal, parse_int=Decimal)
    except RecursionError:
        yield 1, {"_error": "not candles: the JSON is nested too deep"}
        return
    except (ValueError, *_UNREADABLE) as exc:
        yield 1, {"_error": f"not JSON: {_reason(exc)}"}
        return
    if not isinstance(document, list):
        yield 1, {"_error": "expected a JSON array of [time, open, high, low, close, volume]"}
        return
    for number, element in enumerate(document, start=1):
        if not isinstance(element, list) or len(element) < 6:
            yield number, {"_error": "expected [time, open, high, low, close, volume]"}
            continue
        yield number, dict(zip(_OHLCV, element[:6], strict=True))


# --- rows to bars --------------------------------------------------------------------------


def _chunks(
    path: Path,
    rows: Iterator[Row],
    series: _Series,
    chunk_size: int,
    skip_invalid: bool,
    raw: IO[bytes],
) -> Iterator[CandleChunk]:
    timeframe = parse_timeframe(series.timeframe)
    step = timedelta(seconds=timeframe.seconds) if timeframe.seconds else None
    chunk = CandleChunk()
    previous: OHLCVBar | None = None
    seen: dict[datetime, tuple[int, OHLCVBar]] = {}  # this chunk's and the previous candle
    opened = candle_opened_rule()
    for line, values in rows:
        chunk.rows += 1
        try:
            bar = _bar(values, series)
            opened(bar.timeframe, bar.timestamp)
            if step is not None and previous is not None:
                _check_spacing(previous, bar, step, series.timeframe)
            _check_not_twice(seen, line, bar)
        except ValidationError as exc:
            error = CandleFileError(path, line, str(exc))
            if not skip_invalid or isinstance(exc, WrongTimeframeError):
                raise error from None
            chunk.rejected.append(error)
            continue
        chunk.bars.append(bar)
        previous = bar
        if len(chunk.bars) >= chunk_size:
            chunk.bytes_read = _position(raw)
            yield chunk
            chunk = CandleChunk()
            seen = {bar.timestamp: seen[bar.timestamp]}
    if chunk.rows:
        chunk.bytes_read = _position(raw)
        yield chunk


def _bar(values: dict[str, Any], series: _Series) -> OHLCVBar:
    if "_error" in values:
        raise ValidationError(values["_error"])
    return OHLCVBar(
        symbol=series.symbol,
        exchange=series.exchange,
        timeframe=series.timeframe,
        price_type=series.price_type,
        timestamp=parse_time(values["time"]),
        open=_number("open", values["open"]),
        high=_number("high", values["high"]),
        low=_number("low", values["low"]),
        close=_number("close", values["close"]),
        volume=_number("volume", values["volume"]),
        quote_volume=_optional(values.get("quote_volume"), lambda v: _number("quote_volume", v)),
        trades_count=_optional(values.get("trades_count"), _count),
    )


def _check_not_twice(seen: dict[datetime, tuple[int, OHLCVBar]], line: int, bar: OHLCVBar) -> None:
    """The same candle again with other values is two versions of one candle: refused, naming
    both lines (the same values again are a harmless repeat). Checked within a chunk and
    against the candle before it, so memory stays bounded by the chunk."""
    earlier = seen.setdefault(bar.timestamp, (line, bar))
    if earlier[1] is not bar and earlier[1] != bar:
        raise ValidationError(
            f"timestamp: the candle of {bar.timestamp.isoformat()} is also on line {earlier[0]}, "
            "with other values; which one is right?",
            field="timestamp",
        )


def _check_spacing(previous: OHLCVBar, bar: OHLCVBar, step: timedelta, timeframe: str) -> None:
    apart = bar.timestamp - previous.timestamp
    if timedelta(0) < apart < step:
        raise WrongTimeframeError(
            f"candles {apart} apart, closer than one {timeframe} candle: "
            f"is --timeframe right for this file?"
        )


def parse_time(value: Any) -> datetime:
    """Epoch seconds, milliseconds or microseconds (by magnitude), or ISO 8601 with a zone;
    within the supported range (``aware_utc``)."""
    text = str(value).strip()
    if _looks_numeric(text):
        number = Decimal(text)
        if not -_EPOCH_LIMIT < number < _EPOCH_LIMIT:  # too big to convert, let alone store
            raise _out_of_range(text)
        try:
            if number >= 10**14:  # microseconds: 2025 in µs is ~1.7e15, in ms ~1.7e12
                moment = _EPOCH + timedelta(microseconds=int(number))
            elif number >= 10**11:  # milliseconds (1973 onwards)
                moment = _EPOCH + timedelta(milliseconds=int(number))
            else:
                moment = _EPOCH + timedelta(seconds=int(number))
        except OverflowError:
            raise _out_of_range(text) from None
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"time: {text!r} is neither epoch time nor ISO 8601") from None
        if moment.tzinfo is None:
            raise ValidationError(f"time: {text!r} has no time zone (add Z or +00:00)")
    return aware_utc("timestamp", moment)


def _out_of_range(text: str) -> ValidationError:
    return ValidationError(f"time: {text!r} is outside the supported range", field="timestamp")


def _number(name: str, value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    text = str(value).strip()
    if not _looks_numeric(text):
        raise ValidationError(f"{name}: {text!r} is not a number", field=name)
    return Decimal(text)


def _count(value: Any) -> int:
    number = _number("trades_count", value)
    if number != number.to_integral_value():
        raise ValidationError(f"trades_count: {value!r} is not a whole number")
    if number.adjusted() > 18:  # past BIGINT: refused by the column rule, without a huge int
        raise ValidationError(
            f"trades_count: {value!r} is outside the column's range", field="trades_count"
        )
    return int(number)


def _optional(value: Any, convert: Callable[[Any], Any]) -> Any:
    return None if value is None or str(value).strip() == "" else convert(value)


def _looks_numeric(text: str) -> bool:
    try:
        Decimal(text.strip())
    except ArithmeticError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity", "snan")


def _position(raw: IO[bytes]) -> int:
    try:
        return raw.tell()
    except (OSError, ValueError):
        return 0
