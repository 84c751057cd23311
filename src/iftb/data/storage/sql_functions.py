"""SQL constructs that behave the same on both backends: exact decimal arithmetic and
aggregates, candle numbering of timestamps, and the current UTC time.

PostgreSQL computes on NUMERIC natively. SQLite stores our decimals as text (see ``types``) and
would turn ``SUM`` or ``*`` on them into binary floats, so on SQLite each construct here compiles
to a Python function registered on every connection (``register_sqlite_functions``) that
computes with ``Decimal``. Repositories use these constructs and never branch on the dialect.

Usage::

    select(dec_sum(TradeModel.realized_pnl), dec_max(TradeModel.realized_pnl))
    update(PositionModel).values(unrealized_pnl=dec_round(dec_mul(dec_sub(price, entry), qty), 8))
    select(...).where(dec_sign(TradeModel.realized_pnl) > 0)
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from iftb.data.storage.types import ExactNumeric, UTCDateTime
from iftb.data.storage.validation import DECIMAL_CONTEXT

SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"
"""SQLite's current UTC time in the fixed-width text form ``UTCDateTime`` stores."""

# The library's context (wide enough for NUMERIC(20, 8) * NUMERIC(20, 8) without rounding): these
# functions run on aiosqlite's thread, whose decimal context is not the caller's, so they compute
# through its methods (``_CONTEXT.add``): a third of the cost of entering it per row.
_CONTEXT = DECIMAL_CONTEXT


class _DecimalFunction(FunctionElement[Any]):
    """A function over exact decimals: native SQL on PostgreSQL, ``iftb_<name>`` on SQLite."""

    type: Any = ExactNumeric()
    inherit_cache = True
    native: str = ""  # the PostgreSQL rendering, a format string over the compiled arguments


class dec_sum(_DecimalFunction):
    """``SUM`` (also usable as a window function with ``.over()``)."""

    name = "dec_sum"
    native = "sum({0})"
    inherit_cache = True


class dec_min(_DecimalFunction):
    name = "dec_min"
    native = "min({0})"
    inherit_cache = True


class dec_max(_DecimalFunction):
    name = "dec_max"
    native = "max({0})"
    inherit_cache = True


class dec_avg(_DecimalFunction):
    """``AVG``, exact to 28 significant digits."""

    name = "dec_avg"
    native = "avg({0})"
    inherit_cache = True


class dec_add(_DecimalFunction):
    name = "dec_add"
    native = "({0} + {1})"
    inherit_cache = True


class dec_sub(_DecimalFunction):
    name = "dec_sub"
    native = "({0} - {1})"
    inherit_cache = True


class dec_mul(_DecimalFunction):
    name = "dec_mul"
    native = "({0} * {1})"
    inherit_cache = True


class dec_div(_DecimalFunction):
    """Division; NULL when the divisor is zero (as a ratio with no base is undefined)."""

    name = "dec_div"
    native = "({0} / NULLIF({1}, 0))"
    inherit_cache = True


class dec_round(_DecimalFunction):
    """Round half away from zero to a number of places, as PostgreSQL's ``round(numeric, int)``."""

    name = "dec_round"
    native = "round({0}, {1})"
    inherit_cache = True


class dec_within(_DecimalFunction):
    """The value when its absolute value is below a bound, else NULL: a derived value that its
    column could not hold is stored as unknown instead of failing the whole statement (and on
    SQLite, instead of being stored beyond the column's precision)."""

    name = "dec_within"
    native = "(CASE WHEN abs({0}) < {1} THEN {0} END)"
    inherit_cache = True


class dec_sign(_DecimalFunction):
    """-1, 0 or 1: the exact sign, for filters such as "winning trades"."""

    type = Integer()
    name = "dec_sign"
    native = "sign({0})::integer"
    inherit_cache = True


@compiles(_DecimalFunction)
def _compile_native(element: _DecimalFunction, compiler: SQLCompiler, **kw: Any) -> str:
    args = [compiler.process(arg, **kw) for arg in element.clauses]
    return element.native.format(*args)


@compiles(_DecimalFunction, "sqlite")
def _compile_sqlite(element: _DecimalFunction, compiler: SQLCompiler, **kw: Any) -> str:
    args = ", ".join(compiler.process(arg, **kw) for arg in element.clauses)
    return f"iftb_{element.name}({args})"


class utcnow(FunctionElement[datetime]):
    """The current time for server defaults and triggers: ``statement_timestamp()`` on
    PostgreSQL (``now()`` would give every row of a long transaction its start time), and on
    SQLite the same fixed-width UTC text ``UTCDateTime`` stores (``CURRENT_TIMESTAMP`` would
    drop the fraction of a second)."""

    type = UTCDateTime()
    name = "utcnow"
    inherit_cache = True


@compiles(utcnow)
def _compile_utcnow(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "statement_timestamp()"


@compiles(utcnow, "sqlite")
def _compile_utcnow_sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return SQLITE_NOW


class epoch_seconds(FunctionElement[int]):
    """Whole seconds since the Unix epoch of a ``UTCDateTime`` column, as an integer."""

    type = Integer()
    name = "epoch_seconds"
    inherit_cache = True


@compiles(epoch_seconds)
def _compile_epoch(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS BIGINT)"


@compiles(epoch_seconds, "sqlite")
def _compile_epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


class epoch_microseconds(FunctionElement[int]):
    """Microseconds since the Unix epoch of a ``UTCDateTime`` column, exactly, as an integer:
    durations computed from it agree to the microsecond on both backends."""

    type = BigInteger()
    name = "epoch_microseconds"
    inherit_cache = True


@compiles(epoch_microseconds)
def _compile_epoch_us(element: epoch_microseconds, compiler: SQLCompiler, **kw: Any) -> str:
    # EXTRACT returns an exact numeric (PostgreSQL 14+): no float on the way
    column = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"


@compiles(epoch_microseconds, "sqlite")
def _compile_epoch_us_sqlite(element: epoch_microseconds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    # the stored text is 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds, then the fraction's digits
    return (
        f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000 "
        f"+ CAST(substr({column}, 21, 6) AS INTEGER))"
    )


class apart_more_than(FunctionElement[bool]):
    """``later - earlier`` exceeds a whole number of seconds, for ``UTCDateTime`` columns.

    Compares durations directly (no per-row conversion to epoch numbers, which costs more than
    the rest of a gap scan); ``seconds`` is a trusted int from the timeframe table, inlined.
    """

    type = Boolean()
    name = "apart_more_than"
    inherit_cache = True

    def __init__(self, later: Any, earlier: Any, seconds: int) -> None:
        # the seconds as a literal clause, so they are part of the statement's cache key
        super().__init__(later, earlier, literal_column(str(int(seconds))))


@compiles(apart_more_than)
def _compile_apart(element: apart_more_than, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier, seconds = (compiler.process(c, **kw) for c in element.clauses)
    return f"({later} - {earlier}) > make_interval(secs => {seconds})"


@compiles(apart_more_than, "sqlite")
def _compile_apart_sqlite(element: apart_more_than, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier, seconds = (compiler.process(c, **kw) for c in element.clauses)
    # julianday is a double of days; half a second of slack absorbs its rounding
    return f"(julianday({later}) - julianday({earlier})) * 86400.0 > {seconds} + 0.5"


class month_index(FunctionElement[int]):
    """Calendar months since January 1970 of a ``UTCDateTime`` column (``1M`` candle number)."""

    type = Integer()
    name = "month_index"
    inherit_cache = True


@compiles(month_index)
def _compile_month(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return (
        f"CAST((EXTRACT(YEAR FROM {column}) - 1970) * 12 + EXTRACT(MONTH FROM {column}) - 1 "
        "AS INTEGER)"
    )


@compiles(month_index, "sqlite")
def _compile_month_sqlite(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return (
        f"((CAST(strftime('%Y', {column}) AS INTEGER) - 1970) * 12 "
        f"+ CAST(strftime('%m', {column}) AS INTEGER) - 1)"
    )


# --- the SQLite side -------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(value) if isinstance(value, str) else Decimal(str(value))


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format(value.copy_abs() if value.is_zero() else value, "f")  # no "-0" on SQLite


class _Sum:
    """Exact SUM, with ``inverse`` so SQLite can run it as a sliding window function."""

    def __init__(self) -> None:
        self.total = Decimal(0)
        self.count = 0

    def step(self, value: Any) -> None:
        if value is not None:
            self.total = _CONTEXT.add(self.total, _dec(value))  # type: ignore[arg-type]
            self.count += 1

    def inverse(self, value: Any) -> None:
        if value is not None:
            self.total = _CONTEXT.subtract(self.total, _dec(value))  # type: ignore[arg-type]
            self.count -= 1

    def value(self) -> str | None:
        return _text(self.total) if self.count else None

    def finalize(self) -> str | None:
        return self.value()


class _Avg(_Sum):
    def value(self) -> str | None:
        if not self.count:
            return None
        return _text(self.total / self.count)


class _Extreme:
    """Exact MIN or MAX (SQLite's own would compare the texts, not the numbers). As a window
    function it supports frames that only grow (a running maximum), which never remove rows."""

    pick = max

    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: Any) -> None:
        number = _dec(value)
        if number is not None:
            self.best = number if self.best is None else type(self).pick(self.best, number)

    def inverse(self, value: Any) -> None:
        raise NotImplementedError("exact MIN/MAX windows must start at UNBOUNDED PRECEDING")

    def value(self) -> str | None:
        return _text(self.best)

    def finalize(self) -> str | None:
        return _text(self.best)


class _Min(_Extreme):
    pick = min


def _binary(operation: Any) -> Any:
    def apply(left: Any, right: Any) -> str | None:
        a, b = _dec(left), _dec(right)
        if a is None or b is None:
            return None
        return _text(operation(a, b))

    return apply


def _divide(a: Decimal, b: Decimal) -> Decimal | None:
    return None if b == 0 else _CONTEXT.divide(a, b)


def _round(value: Any, places: Any) -> str | None:
    number = _dec(value)
    if number is None:
        return None
    with localcontext(_CONTEXT) as ctx:
        ctx.rounding = "ROUND_HALF_UP"
        return _text(number.quantize(Decimal(1).scaleb(-int(places))))


def _within(value: Any, bound: Any) -> str | None:
    number = _dec(value)
    if number is None or abs(number) >= _dec(bound):  # type: ignore[operator]
        return None
    return _text(number)


def _sign(value: Any) -> int | None:
    number = _dec(value)
    return None if number is None else (number > 0) - (number < 0)


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    """Install the ``iftb_dec_*`` functions on a raw sqlite3 connection."""
    connection.create_window_function("iftb_dec_sum", 1, _Sum)
    connection.create_window_function("iftb_dec_avg", 1, _Avg)
    connection.create_window_function("iftb_dec_min", 1, _Min)
    connection.create_window_function("iftb_dec_max", 1, _Extreme)
    deterministic = {"deterministic": True}
    connection.create_function("iftb_dec_add", 2, _binary(_CONTEXT.add), **deterministic)
    connection.create_function("iftb_dec_sub", 2, _binary(_CONTEXT.subtract), **deterministic)
    connection.create_function("iftb_dec_mul", 2, _binary(_CONTEXT.multiply), **deterministic)
    connection.create_function("iftb_dec_div", 2, _binary(_divide), **deterministic)
    connection.create_function("iftb_dec_round", 2, _round, **deterministic)
    connection.create_function("iftb_dec_within", 2, _within, **deterministic)
    connection.create_function("iftb_dec_sign", 1, _sign, **deterministic)
