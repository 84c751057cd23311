"""Processes racing each other: the same script started several times at once, each with its
own arguments; every one must succeed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
"""The repository, which a racer script puts on its path (``{root}`` in its source)."""


async def race(directory: Path, source: str, *arguments: Sequence[str]) -> None:
    """Write ``source`` (``{root}`` filled in) to ``directory`` and run it once per argument
    list, all at the same time; a racer that fails fails the test with its stderr."""
    script = directory / "racer.py"
    script.write_text(source.format(root=str(ROOT)))
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), *given, stderr=subprocess.PIPE
        )
        for given in arguments
    ]
    for racer in racers:
        _, stderr = await racer.communicate()
        assert racer.returncode == 0, stderr.decode()[-2000:]
