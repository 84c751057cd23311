"""Column types that keep the data rules on both backends.

PostgreSQL has exact NUMERIC, TIMESTAMPTZ and JSONB. SQLite has none of them: a plain
``Numeric`` column there is stored as a binary float, and datetimes lose their zone. These types
close that gap in one place, so models and repositories never branch on the dialect:

* ``ExactNumeric(p, s)``: ``NUMERIC(p, s)`` on PostgreSQL; on SQLite canonical decimal text
  quantized to ``s`` places (TEXT affinity, so SQLite never coerces it to REAL). SQL arithmetic and
  aggregates on these columns go through :mod:`iftb.data.storage.exact_sql`.
* ``UTCDateTime``: ``TIMESTAMPTZ`` on PostgreSQL; fixed-width UTC text on SQLite, whose lexical
  order is the chronological order. Naive datetimes are refused; results are always aware UTC.
* ``JSONDocument``: ``JSONB`` on PostgreSQL, JSON text on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine


class ExactNumeric(TypeDecorator[Decimal]):
    """An exact ``NUMERIC(precision, scale)`` on every backend, read back as ``Decimal``."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int | None = None, scale: int | None = None) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale) if scale is not None else None

    @property
    def limit(self) -> Decimal | None:
        """The exclusive bound on absolute values the column holds (None: unconstrained)."""
        if self.precision is None:
            return None
        return Decimal(10) ** (self.precision - (self.scale or 0))

    def holds(self, value: Decimal) -> bool:
        """Whether ``value``, already at the column's scale, fits its integer digits."""
        limit = self.limit
        return limit is None or abs(value) < limit

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name != "sqlite":
            return value
        return decimal_to_text(value, self._quantum)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(value if isinstance(value, str) else str(value))


def decimal_to_text(value: Decimal | int | str, quantum: Decimal | None) -> str:
    """SQLite's stored form of an exact number: plain notation, quantized to the column scale."""
    number = value if isinstance(value, Decimal) else Decimal(value)
    if quantum is not None:
        number = number.quantize(quantum)
    if number.is_zero():
        number = number.copy_abs()  # PostgreSQL's NUMERIC has no negative zero
    return format(number, "f")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend; naive input is an error."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware UTC datetime")
        if dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(moment, datetime)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def datetime_to_sqlite_text(value: datetime) -> str:
    """The stored SQLite form of an aware datetime (for bulk paths that bypass the ORM)."""
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


JSONDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSONB (GIN-indexable) on PostgreSQL, JSON text on SQLite; Python None is SQL NULL."""
