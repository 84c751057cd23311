"""Where the figures were measured: hardware, OS and library versions, for the report header."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib.metadata import version
from pathlib import Path

import psutil  # type: ignore[import-untyped]


def describe() -> dict[str, str]:
    """Machine and software facts, in report order."""
    memory = psutil.virtual_memory().total / 1024**3
    return {
        "Library commit": source_revision(),
        "CPU": f"{os.cpu_count()} logical CPUs ({_cpu_model()})",
        "RAM": f"{memory:.1f} GiB",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLAlchemy": version("sqlalchemy"),
        "asyncpg": version("asyncpg"),
        "aiosqlite": version("aiosqlite"),
        "SQLite library": sqlite3.sqlite_version,
    }


def source_revision() -> str:
    """The commit measured, and whether the library sources differed from it (uncommitted)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("log", "-1", "--format=%h %s")
    if not commit:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "src")
    return commit + (" — with uncommitted changes under src/" if dirty else "")


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"
