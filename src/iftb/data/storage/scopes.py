"""Scopes: which bot, in which mode (and which backtest run) a journal row belongs to.

Every journal row carries its scope; market data (candles) is shared by all of them. A scope is
validated once, when it is built, so every repository holding one can trust it. Unscoped calls
use ``DEFAULT_SCOPE``, the scope every row had before scopes existed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from iftb.data.storage.enums import Mode
from iftb.data.storage.errors import ValidationError
from iftb.data.storage.validation import BIGINT_MAX, choice_rule, integer_rule

BOT_NAME_LENGTH = 50
DEFAULT_BOT = "default"
SCOPE_COLUMNS = ("bot", "mode", "run_id")
_mode = choice_rule("mode", Mode)
_run_id = integer_rule("run_id", 1, BIGINT_MAX)


@dataclass(frozen=True, slots=True)
class Scope:
    """A bot's name and mode; a backtest scope is one run (``run_id``), live and paper have none.

    Raises:
        ValidationError: an empty or over-long name, one with control characters or edge
            spaces, an unknown mode, a backtest without its run or a run outside a backtest.
    """

    bot: str = DEFAULT_BOT
    mode: str = Mode.LIVE
    run_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bot", bot_name(self.bot))
        object.__setattr__(self, "mode", _mode(self.mode).value)
        if self.mode == Mode.BACKTEST:
            if self.run_id is None:
                raise ValidationError(
                    "run_id: a backtest scope is one run; start one with "
                    "BacktestRunRepository.start() and use its id",
                    field="run_id",
                )
            _run_id(self.run_id)
        elif self.run_id is not None:
            raise ValidationError(
                f"run_id: only backtest scopes have a run ({self.mode} has none)", field="run_id"
            )

    def __str__(self) -> str:
        """``bot/mode``, or ``bot/backtest/run`` (what ``parse`` reads back)."""
        run = "" if self.run_id is None else f"/{self.run_id}"
        return f"{self.bot}/{self.mode}{run}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``"trend-1/paper"``, ``"trend-1/backtest/7"``, or a bare bot name (live)."""
        bot, _, rest = text.partition("/")
        mode, _, run = rest.partition("/")
        if run and not run.isdigit():
            raise ValidationError(f"run_id: {run!r} is not a run number", field="run_id")
        return cls(bot, mode or Mode.LIVE, int(run) if run else None)

    def values(self) -> dict[str, Any]:
        """The scope as column values of a journal row."""
        return {"bot": self.bot, "mode": self.mode, "run_id": self.run_id}


def checked_scope(value: object) -> Scope:
    """``value``, which must be a ``Scope`` (not its text): else a ValidationError."""
    if not isinstance(value, Scope):
        raise ValidationError(f"scope: expected a Scope, got {type(value).__name__}", field="scope")
    return value


def bot_name(value: Any) -> str:
    """A bot name: 1 to 50 characters, none of them a control character, no edge spaces."""
    if not isinstance(value, str):
        raise ValidationError(f"bot: expected a name, got {type(value).__name__}", field="bot")
    if not value.strip():
        raise ValidationError("bot: a bot name cannot be empty", field="bot")
    if len(value) > BOT_NAME_LENGTH:
        raise ValidationError(
            f"bot: {len(value)} characters exceed the limit of {BOT_NAME_LENGTH}", field="bot"
        )
    for position, character in enumerate(value):
        if unicodedata.category(character) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise ValidationError(
                f"bot: control character U+{ord(character):04X} at position {position}",
                field="bot",
            )
    if value != value.strip():
        raise ValidationError("bot: a bot name cannot start or end with a space", field="bot")
    if "/" in value:
        raise ValidationError("bot: '/' separates a scope's parts in a name", field="bot")
    return value


DEFAULT_SCOPE = Scope()
