"""``iftb-db``: the command line of the storage layer.

Each area's commands live in ``iftb.commands``; this module puts them on one Typer app.
"""

from __future__ import annotations

from typing import Annotated

import typer

from iftb.commands import (
    audit,
    candle_export,
    candles,
    catalog,
    demo,
    funding_rates,
    journal,
    ledger,
    schema,
    scopes,
    serve,
)
from iftb.commands.common import err_console
from iftb.config import ConfigError
from iftb.utils import configure_logging

app = typer.Typer(
    help="The iftb trading database: schema, candles, journal, audit trail and a demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log INFO and above.")] = False,
) -> None:
    """The storage layer's log lines are for services; at the terminal, only warnings show."""
    configure_logging(level="INFO" if verbose else "WARNING")


for area in (
    schema,
    candles,
    candle_export,
    catalog,
    funding_rates,
    journal,
    ledger,
    scopes,
    audit,
    demo,
    serve,
):
    app.registered_commands.extend(area.app.registered_commands)
    app.registered_groups.extend(area.app.registered_groups)


def entry() -> None:
    """``iftb-db``: a configuration error met before a command could report it (a malformed
    ``DATABASE_URL`` read while the command sets up) is one clear line and exit 1, never a
    traceback (its text never repeats the URL)."""
    try:
        app()
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    entry()
