"""freqtrade's candle files (feather, its default, and parquet), both ways.

freqtrade names a file ``{PAIR}-{timeframe}.feather`` (spot) or
``futures/{PAIR}-{timeframe}-{candle type}.feather``, the pair with ``/`` and ``:`` as ``_``
(``BTC_USDT_USDT-1h-mark.feather``), and stores ``date`` (UTC) and float64 ``open``, ``high``,
``low``, ``close``, ``volume``. Its candle types map onto iftb's price types: spot and futures
candles are trade candles; mark, index and premiumIndex are their namesakes (funding-rate files
are funding rates: ``import-funding-rates``). Prices are floats there: each is read at its
shortest decimal form and rounded to 8 places, as the candle columns hold. Needs pyarrow
(``pip install 'iftb[parquet]'``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from iftb.data.storage import OHLCVBar, PriceType

FREQTRADE_CANDLE_TYPES = {
    "spot": PriceType.TRADE,
    "futures": PriceType.TRADE,
    "mark": PriceType.MARK,
    "index": PriceType.INDEX,
    "premiumIndex": PriceType.PREMIUM_INDEX,
}
SUFFIXES = (".feather", ".parquet")
_NAME = re.compile(r"^(?P<pair>.+)-(?P<timeframe>\d+[smhdwM])(?:-(?P<kind>[A-Za-z_]+))?$")
_PRICE_PLACES = Decimal("1e-8")
_COLUMNS = ("date", "open", "high", "low", "close", "volume")


class FreqtradeFileError(ValueError):
    """A freqtrade file that cannot be read or written, and why."""


def is_freqtrade_file(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def freqtrade_price_type(path: Path) -> PriceType | None:
    """The price type a freqtrade file name states, or None when it names none (a spot file,
    or another name). A funding-rate file is refused: it holds rates, not candles."""
    match = _NAME.match(path.stem)
    kind = match["kind"] if match else None
    if kind == "funding_rate":
        raise FreqtradeFileError(
            f"{path.name} holds funding rates, not candles: use import-funding-rates"
        )
    return FREQTRADE_CANDLE_TYPES.get(kind) if kind else None


def freqtrade_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's candles as (row number, fields): time in epoch milliseconds, prices as exact
    Decimals of their shortest float form, rounded to 8 places."""
    table = _read_table(path)
    missing = [name for name in _COLUMNS if name not in table.column_names]
    if missing:
        raise FreqtradeFileError(f"{path.name}: no {', '.join(missing)} column")
    pa = _pyarrow()
    times = table.column("date").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
    values = {name: table.column(name).to_pylist() for name in _COLUMNS[1:]}
    for row, moment in enumerate(times):
        fields: dict[str, Any] = {"time": moment}
        for name, column in values.items():
            fields[name] = _price(column[row])
        yield row + 1, fields


def write_freqtrade(path: Path, bars: Sequence[OHLCVBar]) -> int:
    """Write ``bars`` in freqtrade's layout (feather with lz4, as freqtrade writes it, or
    parquet by the suffix); returns how many."""
    pa = _pyarrow()
    table = pa.table(
        {
            "date": pa.array([bar.timestamp for bar in bars], pa.timestamp("ms", tz="UTC")),
            **{
                name: pa.array([float(getattr(bar, name)) for bar in bars], pa.float64())
                for name in _COLUMNS[1:]
            },
        }
    )
    if path.suffix.lower() == ".feather":
        import pyarrow.feather as feather

        feather.write_feather(table, path, compression="lz4")
    elif path.suffix.lower() == ".parquet":
        import pyarrow.parquet as parquet

        parquet.write_table(table, path)
    else:
        raise FreqtradeFileError(f"{path.name}: freqtrade files are .feather or .parquet")
    return len(bars)


def _read_table(path: Path) -> Any:
    _pyarrow()
    import pyarrow.feather as feather
    import pyarrow.parquet as parquet

    try:
        if path.suffix.lower() == ".feather":
            return feather.read_table(path)
        return parquet.read_table(path)
    except Exception as exc:
        raise FreqtradeFileError(f"{path.name}: cannot read it: {exc}") from None


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise FreqtradeFileError(
            "freqtrade's feather and parquet files need pyarrow: pip install 'iftb[parquet]'"
        ) from None
    return pyarrow


def _price(value: Any) -> Any:
    """A float at its shortest decimal form, rounded to 8 places; anything else as it is (the
    candle's own rules then name what is wrong with it)."""
    if not isinstance(value, float):
        return value
    exact = Decimal(repr(value))
    try:
        return exact.quantize(_PRICE_PLACES, ROUND_HALF_EVEN)
    except InvalidOperation:  # not finite, or too large for the column
        return exact
