"""Repeated, interleaved timing: the median of several runs, the compared sides taking turns.

Rotating which side runs first in each repetition spreads any drift of the machine (caches,
checkpoints, other load) over both sides instead of favouring one of them.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Action = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Samples:
    """Wall-clock seconds of each repetition."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)


@dataclass(frozen=True)
class Case:
    """What one side does per repetition: an untimed ``setup``, then the timed ``action``."""

    action: Action
    setup: Action | None = None


async def timed(action: Action) -> float:
    """Seconds ``action`` takes, after a full garbage collection (so earlier garbage is not
    collected on its clock)."""
    gc.collect()
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def repeat(repetitions: int, case: Case) -> Samples:
    """``case`` timed ``repetitions`` times."""
    seconds = []
    for _ in range(repetitions):
        if case.setup is not None:
            await case.setup()
        seconds.append(await timed(case.action))
    return Samples(tuple(seconds))


async def compare(repetitions: int, *cases: Case) -> tuple[Samples, ...]:
    """Every case timed ``repetitions`` times, rotating which one goes first."""
    times: list[list[float]] = [[] for _ in cases]
    for index in range(repetitions):
        for offset in range(len(cases)):
            position = (index + offset) % len(cases)
            case = cases[position]
            if case.setup is not None:
                await case.setup()
            times[position].append(await timed(case.action))
    return tuple(Samples(tuple(seconds)) for seconds in times)
