"""What every command shares: the database and scope options, running async work, errors as one
line, and parsing of times and ages given on the command line."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Column, Table
from sqlalchemy.ext.asyncio import AsyncSession

from iftb.config import ConfigError
from iftb.data.candle_files import CandleFileError
from iftb.data.freqtrade_files import FreqtradeFileError
from iftb.data.funding_files import FundingFileError
from iftb.data.storage import (
    DEFAULT_SCOPE,
    BacktestRunRepository,
    DatabaseManager,
    Mode,
    NotFoundError,
    Scope,
    StorageError,
    ValidationError,
)

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; defaults to the settings (DATABASE_URL, DB_* or the SQLite file).",
        show_default=False,
    ),
]
Exchange = Annotated[str, typer.Option(help="Exchange of the series.")]
PriceTypeOption = Annotated[
    str, typer.Option("--price-type", help="trade (default), mark, index or premium_index.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

_AGE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


FILE_ERRORS = (CandleFileError, FundingFileError, FreqtradeFileError)
"""A file that cannot be read: one clear line, exit 1."""


def manager_for(database_url: str | None, **options: Any) -> DatabaseManager:
    """A manager configured from the settings (pool, retries, timeouts), on ``--database-url``
    when given."""
    return DatabaseManager.from_settings(url=database_url, **options)


@asynccontextmanager
async def open_database(database_url: str | None) -> AsyncIterator[DatabaseManager]:
    """A connected manager (the SQLite default is migrated on first use)."""
    async with manager_for(database_url) as manager:
        yield manager


@asynccontextmanager
async def reading(database_url: str | None) -> AsyncIterator[AsyncSession]:
    """A read-only unit of work: on SQLite it never takes the write lock, so a long export or
    report runs beside the bot's own writes instead of making them wait."""
    async with (
        open_database(database_url) as manager,
        manager.get_session(read_only=True) as session,
    ):
        yield session


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run async work; a storage, file or configuration error exits 1 with one clear line."""
    try:
        return asyncio.run(_call(work))
    except (
        StorageError,
        ConfigError,
        CandleFileError,
        FundingFileError,
        FreqtradeFileError,
    ) as exc:
        fail(str(exc))


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit 1."""
    err_console.print(f"[red]error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def parse_moment(name: str, text: str) -> datetime:
    """ISO 8601; a date or a time without zone is taken as UTC (the store's only zone)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name}: {text!r} is not an ISO 8601 date or time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None


def parse_age(name: str, text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``."""
    match = _AGE.match(text)
    if match is None:
        raise ValidationError(f"{name}: {text!r} is not an age like 90d, 12h, 30m or 2w")
    return timedelta(**{_AGE_UNITS[match[2]]: int(match[1])})


def money(value: object) -> str:
    """A Decimal as plain text (no exponent, no float rounding)."""
    return "—" if value is None else f"{value:f}" if hasattr(value, "as_tuple") else str(value)


def when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def folding_table(*headers: str, title: str | None = None) -> Table:
    """A Rich table that folds long cells instead of cutting them (never an ellipsised price)."""
    return Table(*(Column(header, overflow="fold") for header in headers), title=title)


LATEST = "latest"
DEFAULT_SCOPE_TEXT = str(DEFAULT_SCOPE)

ScopeOption = Annotated[
    str,
    typer.Option(
        "--scope", help="BOT/MODE or BOT/backtest/RUN (RUN may be 'latest'); a bare BOT is live."
    ),
]


async def resolve_scope(session: AsyncSession, text: str) -> Scope:
    """``text`` as a scope that exists: ``BOT/backtest/latest`` becomes the bot's latest finished
    run, and a backtest run must exist and belong to the bot named.

    Raises:
        ValidationError: bad syntax, bot name or mode (the message quotes ``text``).
        NotFoundError: no such run, or no finished run for ``latest``.
    """
    bot, _, rest = text.partition("/")
    mode, _, run_part = rest.partition("/")
    runs = BacktestRunRepository(session)
    try:
        if mode == Mode.BACKTEST and run_part == LATEST:
            latest = await runs.latest(bot)
            if latest is None:
                raise NotFoundError(f"scope {text!r}: bot {bot!r} has no finished backtest run")
            return latest.scope
        scope = Scope.parse(text)
    except ValidationError as exc:
        raise ValidationError(f"scope {text!r}: {exc}", field="scope") from None
    if scope.run_id is not None:
        found = await runs.get(scope.run_id)
        if found is None:
            raise NotFoundError(f"scope {text!r}: no backtest run with id {scope.run_id}")
        if found.bot != scope.bot:
            raise NotFoundError(
                f"scope {text!r}: run {scope.run_id} belongs to bot {found.bot!r}, not {bot!r}"
            )
    return scope
