"""``python -m benchmarks``: see the package docstring."""

from benchmarks.cli import main

raise SystemExit(main())
