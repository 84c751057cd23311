"""What a run produces: one Figure per measured operation, grouped per backend."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.timing import Samples


@dataclass(frozen=True)
class Target:
    """A target and whether it was met (None: not applicable to what was measured)."""

    text: str
    met: bool | None
    evidence: str
    """The number that decides it, e.g. ``0.71×`` or ``+38 MB``."""


@dataclass(frozen=True)
class Figure:
    """One operation: the library against a baseline on the same rows.

    ``baseline`` is the raw driver doing the same work, or for gaps and coverage the naive
    load-every-timestamp-and-loop approach. The ratio is baseline time / library time, i.e.
    library rows/s over baseline rows/s (above 1: the library is faster).
    """

    operation: str
    rows: int
    library: Samples
    baseline: Samples | None
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def library_rate(self) -> float:
        return self.rows / self.library.median

    @property
    def baseline_rate(self) -> float | None:
        return None if self.baseline is None else self.rows / self.baseline.median

    @property
    def ratio(self) -> float | None:
        return None if self.baseline is None else self.baseline.median / self.library.median


@dataclass
class BackendResults:
    """Everything measured on one backend, or why it was skipped."""

    backend: str
    server_version: str = ""
    figures: list[Figure] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    """Sanity checks done on the way (library and raw stored identical rows, …)."""
    skipped: str | None = None
    seconds: float = 0.0
    """Wall-clock time of the whole backend run, seeding included."""


def ratio_target(minimum: float, baseline_name: str, ratio: float | None) -> Target:
    """``library ≥ minimum × baseline`` in rows/s."""
    text = f"≥ {minimum:g}× {baseline_name}"
    if ratio is None:
        return Target(text, None, "no baseline")
    return Target(text, ratio >= minimum, ratio_evidence(ratio, minimum))


def ratio_evidence(ratio: float, minimum: float) -> str:
    """The ratio to two decimals, or three when two would round onto the threshold."""
    shown = f"{ratio:.2f}"
    if float(shown) == minimum and ratio != minimum:
        shown = f"{ratio:.3f}"
    return f"{shown}×"
