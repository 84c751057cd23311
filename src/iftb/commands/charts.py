"""PNG charts for ``chart`` and ``equity``. matplotlib is an optional extra (``iftb[charts]``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from iftb.commands.common import fail
from iftb.data.storage import Gap, OHLCVBar, parse_timeframe

_MAX_CANDLE_BODIES = 1_500  # beyond this, bodies are sub-pixel: draw the close as a line


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        fail("charts need matplotlib: pip install 'iftb[charts]'")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_candles(
    bars: Sequence[OHLCVBar], gaps: Sequence[Gap], timeframe: str, out: Path, title: str
) -> None:
    """Candles (or the close line for long ranges), with each gap shaded red."""
    plt = _pyplot()
    tf = parse_timeframe(timeframe)
    figure, axes = plt.subplots(figsize=(12, 5), dpi=100)
    times = [bar.timestamp for bar in bars]
    if len(bars) <= _MAX_CANDLE_BODIES:
        width = _width(tf.seconds)
        for bar in bars:
            colour = "#26a69a" if bar.close >= bar.open else "#ef5350"
            axes.vlines(bar.timestamp, float(bar.low), float(bar.high), color=colour, linewidth=0.8)
            bottom, top = sorted((float(bar.open), float(bar.close)))
            axes.bar(bar.timestamp, top - bottom or 1e-9, width, bottom, color=colour)
    else:
        axes.plot(times, [float(bar.close) for bar in bars], linewidth=0.8, color="#455a64")
    for gap in gaps:
        axes.axvspan(gap.start, tf.shift(gap.end), color="#ef5350", alpha=0.15, linewidth=0)
    missing = sum(gap.missing for gap in gaps)
    axes.set_title(f"{title}: {len(bars):,} candles, {len(gaps)} gaps ({missing:,} missing)")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)


def draw_equity(curve: Sequence[tuple[date, Decimal]], out: Path, title: str) -> None:
    """The daily equity curve."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(12, 5), dpi=100)
    axes.plot([day for day, _ in curve], [float(value) for _, value in curve], color="#1e88e5")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)


def _width(seconds: int | None) -> float:
    """A candle body's width in matplotlib date units (days): 70% of the candle."""
    return timedelta(seconds=seconds or 30 * 86_400) / timedelta(days=1) * 0.7
