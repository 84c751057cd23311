"""Futures market data: a price type in the candle series key, and funding rates.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

* ``ohlcv.price_type`` in {trade, mark, index, premium_index}; every existing candle is a
  ``trade`` candle. Candles are unique per (symbol, exchange, timeframe, price type, open time).
* The retention functions name a series with its price type: ``iftb_delete_ohlcv`` and
  ``iftb_drop_ohlcv_partitions`` take ``only_price_type``, and a partition holding another
  price type of the same symbol is not dropped whole (0005's would have dropped mark candles
  with the trade candles). The 0005 signatures go; whoever could run them may run these.
* ``funding_rates``: one rate per (exchange, symbol, funding time), with the mark price when
  known.

The downgrade refuses while candles of a price type other than ``trade`` are stored: before
0008 they would collide with the trade candles of their series.
"""

from collections.abc import Sequence
from types import ModuleType

import sqlalchemy as sa
from alembic import op

from iftb.data.storage.errors import ConflictError
from iftb.data.storage.sql_functions import utcnow
from iftb.data.storage.types import ExactNumeric, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PRICE_TYPES = "('trade', 'mark', 'index', 'premium_index')"
OLD_KEY = ["symbol", "exchange", "timeframe", "timestamp"]
NEW_KEY = ["symbol", "exchange", "timeframe", "price_type", "timestamp"]

OLD_DROP = "public.iftb_drop_ohlcv_partitions(timestamptz, timestamptz, text, text, text)"
NEW_DROP = "public.iftb_drop_ohlcv_partitions(timestamptz, timestamptz, text, text, text, text)"
OLD_DELETE = "public.iftb_delete_ohlcv(timestamptz, timestamptz, timestamptz, text, text, text)"
NEW_DELETE = (
    "public.iftb_delete_ohlcv(timestamptz, timestamptz, timestamptz, text, text, text, text)"
)
ENSURE = "public.iftb_ensure_ohlcv_partitions(timestamptz[])"
_CONTINUED = "'\n" + " " * 38 + "'"  # how 0004's format() string continues on its next line


def _revision(name: str) -> ModuleType:
    script = op.get_context().script
    assert script is not None
    found = script.get_revision(name)
    assert found is not None
    return found.module


def _replaced(text: str, *changes: tuple[str, str]) -> str:
    """``text`` with each (old, new) replaced; an old text not found is an error, not a no-op."""
    for old, new in changes:
        if old not in text:
            raise RuntimeError(f"the function text 0008 rewrites has no {old!r}")
        text = text.replace(old, new)
    return text


def drop_function() -> str:
    """0005's ``iftb_drop_ohlcv_partitions`` with a price type in the series it keeps apart."""
    return _replaced(
        _revision("0005").drop_function(_revision("0004").DROP),
        ("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION"),
        (
            "only_timeframe text DEFAULT NULL)",
            "only_timeframe text DEFAULT NULL,\n    only_price_type text DEFAULT NULL)",
        ),
        (
            f"(symbol, exchange, timeframe) {_CONTINUED}IS DISTINCT FROM ($1, $2, $3))",
            f"(symbol, exchange, timeframe, price_type) {_CONTINUED}"
            "IS DISTINCT FROM ($1, $2, $3, $4))",
        ),
        (
            "USING only_symbol, only_exchange, only_timeframe;",
            "USING only_symbol, only_exchange, only_timeframe,\n"
            "                      only_price_type;",
        ),
    )


def delete_function() -> str:
    """0005's ``iftb_delete_ohlcv`` naming a series with its price type."""
    return _replaced(
        _revision("0005").CREATE_DELETE,
        (
            "only_timeframe text DEFAULT NULL)",
            "only_timeframe text DEFAULT NULL, only_price_type text DEFAULT NULL)",
        ),
        (
            "rows_from, partitions_to, only_symbol, only_exchange, only_timeframe);",
            "rows_from, partitions_to, only_symbol, only_exchange, only_timeframe,\n"
            "        only_price_type);",
        ),
        (
            "AND timeframe = only_timeframe));",
            "AND timeframe = only_timeframe\n               AND price_type = only_price_type));",
        ),
    )


def copy_constraints(copied: bool) -> str:
    """Partitions made by ``iftb_ensure_ohlcv_partitions`` copy the parent's CHECK constraints
    (``copied``), which ATTACH PARTITION requires once the parent has one; or, going down, no
    longer do. The function's text is the one installed (its partition unit was chosen when
    0002 ran), edited in place: ``CREATE OR REPLACE`` keeps who may run it."""
    before, after = "INCLUDING DEFAULTS)", "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    if not copied:
        before, after = after, before
    return f"""DO $$
DECLARE
    definition text := pg_catalog.pg_get_functiondef('{ENSURE}'::pg_catalog.regprocedure);
BEGIN
    IF pg_catalog.strpos(definition, '{before}') = 0 THEN
        RAISE EXCEPTION 'iftb_ensure_ohlcv_partitions is not the text 0008 expects';
    END IF;
    EXECUTE pg_catalog.replace(definition, '{before}', '{after}');
END $$"""


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(copy_constraints(True))
    with op.batch_alter_table("ohlcv", recreate="auto") as batch:
        batch.add_column(
            sa.Column(
                "price_type", sa.String(16), server_default=sa.text("'trade'"), nullable=False
            )
        )
        batch.create_check_constraint(op.f("ck_ohlcv_price_type"), f"price_type IN {PRICE_TYPES}")
        batch.drop_constraint("ohlcv_unique_candle", type_="unique")
        batch.create_unique_constraint("ohlcv_unique_candle", NEW_KEY)
    op.create_table(
        "funding_rates",
        sa.Column("id", Id, sa.Identity(always=False), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=utcnow(), nullable=False),
        sa.Column("exchange", sa.String(50), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("funding_time", UTCDateTime(), nullable=False),
        sa.Column("rate", ExactNumeric(20, 12), nullable=False),
        sa.Column("mark_price", ExactNumeric(20, 8)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_rates")),
        sa.UniqueConstraint(
            "exchange", "symbol", "funding_time", name=op.f("uq_funding_rates_series_time")
        ),
    )
    if dialect == "postgresql":
        carry = _revision("0004").carry_execute
        op.execute(drop_function())
        op.execute(f"REVOKE EXECUTE ON FUNCTION {NEW_DROP} FROM PUBLIC")
        op.execute(carry(OLD_DROP, NEW_DROP))
        op.execute(delete_function())
        op.execute(f"REVOKE EXECUTE ON FUNCTION {NEW_DELETE} FROM PUBLIC")
        op.execute(carry(OLD_DELETE, NEW_DELETE))
        op.execute(f"DROP FUNCTION {OLD_DELETE}")
        op.execute(f"DROP FUNCTION {OLD_DROP}")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    others = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM ohlcv WHERE price_type <> 'trade'"))
        .scalar()
    )
    if others:
        raise ConflictError(
            f"{others} candles are mark, index or premium index candles; before 0008 they would "
            "collide with the trade candles of their series: export and delete them first"
        )
    if dialect == "postgresql":
        carry = _revision("0004").carry_execute
        op.execute(_revision("0005").drop_function(_revision("0004").DROP))
        op.execute(f"REVOKE EXECUTE ON FUNCTION {OLD_DROP} FROM PUBLIC")
        op.execute(carry(NEW_DROP, OLD_DROP))
        op.execute(_revision("0005").CREATE_DELETE)
        op.execute(f"REVOKE EXECUTE ON FUNCTION {OLD_DELETE} FROM PUBLIC")
        op.execute(carry(NEW_DELETE, OLD_DELETE))
        op.execute(f"DROP FUNCTION {NEW_DELETE}")
        op.execute(f"DROP FUNCTION {NEW_DROP}")
        op.execute(copy_constraints(False))
    op.drop_table("funding_rates")
    with op.batch_alter_table("ohlcv", recreate="auto") as batch:
        batch.drop_constraint("ohlcv_unique_candle", type_="unique")
        batch.create_unique_constraint("ohlcv_unique_candle", OLD_KEY)
        batch.drop_constraint(op.f("ck_ohlcv_price_type"), type_="check")
        batch.drop_column("price_type")
