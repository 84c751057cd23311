"""Field rules derived from the ORM columns, so a record is checked against exactly what its
table can hold (one source of truth: the models).

Each rule takes a value and returns it normalised (floats through ``Decimal(str(x))``, datetimes
to UTC) or raises a ``ValidationError`` that names the field and the rule. The rules refuse, the
same on both backends, whatever one of them cannot store or round-trip exactly (the data rules
of docs/storage_layer.md): text that is not valid UTF-8 or holds NUL, JSON deeper than
``MAX_JSON_DEPTH`` or with NaN/Infinity, timestamps outside ``[EARLIEST, LATEST]``, integers past
their column.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Date, Integer, String
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage.errors import ValidationError
from iftb.data.storage.timeframes import parse_timeframe
from iftb.data.storage.types import ExactNumeric, UTCDateTime

Rule = Callable[[Any], Any]

_INT_RANGES = {
    "Integer": (-(2**31), 2**31 - 1),
    "BigInteger": (-(2**63), 2**63 - 1),
}
BIGINT_MAX = _INT_RANGES["BigInteger"][1]

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
"""The supported timestamps: both backends store and return every one exactly. Python cannot
shift year 1 or 9999-12-31 into every zone, and asyncpg sends ``datetime.min``/``max`` as
-infinity/infinity; nothing the bot records happened before 1970."""

MAX_JSON_DEPTH = 64
"""Containers nested deeper are refused: deep documents exhaust Python's recursion when read
back, and no legitimate payload needs more."""

DECIMAL_CONTEXT = Context(
    prec=80,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""The library's own arithmetic context, wide enough for NUMERIC(20,8) products, so a caller's
narrow ``decimal`` context (``getcontext().prec = 3``, trapped ``Inexact``) changes nothing."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def to_decimal(field: str, value: Any) -> Decimal:
    """Accept Decimal, int, str, or float (through ``Decimal(str(x))``, never binary expansion)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValidationError(f"{field}: expected a number, got a bool", field=field)
    if isinstance(value, int | str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValidationError(f"{field}: {value!r} is not a number", field=field) from None
    if isinstance(value, float):
        return Decimal(str(value))
    raise ValidationError(f"{field}: expected a Decimal, got {type(value).__name__}", field=field)


def decimal_rule(field: str, precision: int, scale: int) -> Rule:
    """Finite, an integer part that fits ``precision``, and at most ``scale`` decimal places.

    Ordered so each test is safe for what passed the one before (a NaN cannot be compared; a
    huge number cannot be quantized), and cheap on the hot path of bulk candle ingest.
    """
    limit = Decimal(10) ** (precision - scale)
    low = -limit
    quantum = Decimal(1).scaleb(-scale)

    def check(value: Any) -> Decimal:
        number = value if type(value) is Decimal else to_decimal(field, value)
        if not number.is_finite():
            raise ValidationError(f"{field}: {number} is not a finite number", field=field)
        if not low < number < limit:
            raise ValidationError(
                f"{field}: {number} does not fit NUMERIC({precision},{scale}) "
                f"(absolute value must be below {limit})",
                field=field,
            )
        # the context passed positionally: as a keyword it doubles the cost of this hot check
        if number.quantize(quantum, None, DECIMAL_CONTEXT) != number:
            raise ValidationError(
                f"{field}: {number} has more than {scale} decimal places", field=field
            )
        return number

    return check


def aware_utc(field: str, value: Any) -> datetime:
    """An aware datetime in ``[EARLIEST, LATEST]``, returned in UTC; a naive one is refused
    rather than guessed."""
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{field}: expected a datetime, got {type(value).__name__}", field=field
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            f"{field}: naive datetime {value.isoformat()} (timezone-aware UTC required)",
            field=field,
        )
    try:
        moment = value if value.tzinfo is UTC else value.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, 9999-12-31 west of it
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise ValidationError(
            f"{field}: {value.isoformat()} is outside the supported range "
            f"{EARLIEST.isoformat()} .. {LATEST.isoformat()}",
            field=field,
        )
    return moment


def utc_rule(field: str) -> Rule:
    return lambda value: aware_utc(field, value)


def storable_text(field: str, value: str) -> None:
    """Refuse what PostgreSQL text cannot hold and SQLite would store anyway: NUL, and lone
    surrogates (not valid UTF-8, so no driver can send them)."""
    if "\x00" in value:
        raise ValidationError(f"{field}: NUL characters cannot be stored", field=field)
    if not value.isascii() and (found := _SURROGATE.search(value)) is not None:
        raise ValidationError(
            f"{field}: lone surrogate U+{ord(found.group()):04X} at position {found.start()} "
            "cannot be stored (not valid UTF-8)",
            field=field,
        )


def text_rule(field: str, max_length: int | None) -> Rule:
    """A str within the column's length (counted in characters, as VARCHAR(n) counts them),
    storable on both backends."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(
                f"{field}: expected a string, got {type(value).__name__}", field=field
            )
        if max_length is not None and len(value) > max_length:
            raise ValidationError(
                f"{field}: {len(value)} characters exceed the limit of {max_length}", field=field
            )
        storable_text(field, value)
        return value

    return check


def integer_rule(field: str, low: int, high: int) -> Rule:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(
                f"{field}: expected an int, got {type(value).__name__}", field=field
            )
        if not low <= value <= high:
            raise ValidationError(f"{field}: {value} is outside [{low}, {high}]", field=field)
        return value

    return check


def date_rule(field: str) -> Rule:
    """A date within the supported range (day arithmetic on year 1 or 9999 overflows)."""

    def check(value: Any) -> date:
        if isinstance(value, datetime) or not isinstance(value, date):
            raise ValidationError(
                f"{field}: expected a date, got {type(value).__name__}", field=field
            )
        if not EARLIEST.date() <= value <= LATEST.date():
            raise ValidationError(
                f"{field}: {value} is outside the supported range "
                f"{EARLIEST.date()} .. {LATEST.date()}",
                field=field,
            )
        return value

    return check


def json_rule(field: str) -> Rule:
    """JSON-serialisable, strictly: at most ``MAX_JSON_DEPTH`` deep, no NaN or Infinity, and
    every key and string storable text (JSONB refuses the rest; SQLite would keep it)."""

    def check(value: Any) -> Any:
        _check_json_tree(field, value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{field}: not JSON-serialisable ({exc})", field=field) from None
        return value

    return check


def _check_json_tree(field: str, document: Any) -> None:
    """Walk ``document`` without recursion (a hostile one is deep, or contains itself), so the
    depth is bounded before ``json.dumps`` recurses into it."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            storable_text(field, value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(
                f"{field}: {value} is not a finite number (JSON has no NaN or Infinity)",
                field=field,
            )
        elif isinstance(value, dict | list | tuple):
            if depth > MAX_JSON_DEPTH:
                raise ValidationError(
                    f"{field}: nested deeper than {MAX_JSON_DEPTH} levels", field=field
                )
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)


def checked_id(field: str, value: Any) -> int:
    """A database id given as an argument: an int that fits BIGINT."""
    result: int = integer_rule(field, -BIGINT_MAX - 1, BIGINT_MAX)(value)
    return result


def days_ago(days: Any) -> datetime:
    """The start of a window over the last ``days`` days (a whole number ≥ 1). A window reaching
    before ``EARLIEST`` starts there: it holds everything, and ``now - days`` could overflow."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValidationError(f"days: must be a whole number ≥ 1 (got {days!r})", field="days")
    now = datetime.now(UTC)
    if days > (now - EARLIEST).days:
        return EARLIEST
    return now - timedelta(days=days)


CLOCK_SKEW = timedelta(seconds=60)
"""How far this host's clock may lag the exchange's before a just-opened candle is refused."""


def candle_opened_rule(now: datetime | None = None) -> Callable[[str, datetime], None]:
    """A check that a candle opens no later than the current candle of its timeframe at
    ``now`` (the real clock by default) plus ``CLOCK_SKEW``: a candle from the future is a unit
    or clock error, and one far ahead would create a partition for every month up to it. The
    allowance keeps a candle the exchange has just opened from being refused when this host's
    clock runs a little behind the exchange's."""
    moment = (datetime.now(UTC) if now is None else now) + CLOCK_SKEW
    current: dict[str, datetime] = {}

    def check(timeframe: str, timestamp: datetime) -> None:
        latest = current.get(timeframe)
        if latest is None:
            latest = current[timeframe] = parse_timeframe(timeframe).floor(moment)
        if timestamp > latest:
            raise ValidationError(
                f"timestamp: {timestamp.isoformat()} opens in the future (the current "
                f"{timeframe} candle opened at {latest.isoformat()})",
                field="timestamp",
            )

    return check


def choice_rule(field: str, choices: type[StrEnum]) -> Rule:
    def check(value: Any) -> StrEnum:
        try:
            return choices(value)
        except ValueError:
            allowed = ", ".join(member.value for member in choices)
            raise ValidationError(
                f"{field}: {value!r} is not one of {allowed}", field=field
            ) from None

    return check


def column_rules(
    model: type[DeclarativeBase], choices: Mapping[str, type[StrEnum]] | None = None
) -> dict[str, Rule]:
    """One rule per column of ``model``, from its type; ``choices`` adds enum columns."""
    rules: dict[str, Rule] = {}
    for column in model.__table__.columns:
        name, kind = column.key, column.type
        if choices and name in choices:
            rules[name] = choice_rule(name, choices[name])
        elif isinstance(kind, ExactNumeric):
            rules[name] = decimal_rule(name, kind.precision or 0, kind.scale or 0)
        elif isinstance(kind, UTCDateTime):
            rules[name] = utc_rule(name)
        elif isinstance(kind, String):
            rules[name] = text_rule(name, kind.length)
        elif isinstance(kind, Date):
            rules[name] = date_rule(name)
        elif isinstance(kind, BigInteger | Integer):
            low, high = _INT_RANGES["Integer" if type(kind) is Integer else "BigInteger"]
            rules[name] = integer_rule(name, low, high)
        else:
            rules[name] = json_rule(name)
    return rules


def required_columns(model: type[DeclarativeBase]) -> frozenset[str]:
    """Columns that must be given: NOT NULL with no default on the server."""
    return frozenset(
        column.key
        for column in model.__table__.columns
        if not column.nullable and column.server_default is None and not column.primary_key
    )


def positive(field: str, value: Decimal | None, *, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is None, or greater than (or equal to) zero."""
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        rule = "must be ≥ 0" if allow_zero else "must be > 0"
        raise ValidationError(f"{field}: {rule} (got {value})", field=field)
