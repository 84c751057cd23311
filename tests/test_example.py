"""``examples/storage_example.py`` runs as a user runs it, against each backend, twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "storage_example.py"


def test_the_example_tours_every_repository_and_can_run_again(
    backend: str, database_url: str
) -> None:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("DB_")},
        "DATABASE_URL": database_url,
    }
    outputs = []
    for _ in range(2):
        finished = subprocess.run(
            [sys.executable, str(EXAMPLE)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr[-3000:]
        outputs.append(finished.stdout)
    for output in outputs:  # idempotent: the second run stores nothing new
        assert "statistics: 1 trades" in output and "gap: 2 missing" in output
        assert "3 missing in 2 gaps" in output
        assert "llm usage: " in output
