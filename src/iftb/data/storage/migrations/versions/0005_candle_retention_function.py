"""Candle retention in one SECURITY DEFINER function: whole partitions dropped and the remaining
rows deleted by one role, in one call.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``delete_range`` and ``purge`` dropped whole partitions through ``iftb_drop_ohlcv_partitions``
(run as the functions' owner) and then deleted the remaining rows as the caller. On Citus a
distributed table may not be changed by two users in one transaction, so the bot's retention
failed there ("placements that were modified in this transaction by a different user").
``iftb_delete_ohlcv`` does both as the owner. Whoever may run the drop function may run it.

``iftb_drop_ohlcv_partitions`` told a partition holding other series from one holding only the
named series with ``<>``: given a symbol but no exchange (a direct call), ``exchange <> NULL`` is
NULL, every candle of the symbol looked like the series, and a partition holding the symbol's
candles of other exchanges was dropped. It now compares with ``IS DISTINCT FROM``; the downgrade
restores 0004's text.
"""

from collections.abc import Sequence
from types import ModuleType

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROP_PARTITIONS = "public.iftb_drop_ohlcv_partitions(timestamptz, timestamptz, text, text, text)"
DELETE = "public.iftb_delete_ohlcv(timestamptz, timestamptz, timestamptz, text, text, text)"

_CONTINUED = "'\n" + " " * 38 + "'"  # how 0004's format() string continues on its next line
SERIES_TEST_0004 = f"symbol <> $1 {_CONTINUED}OR exchange <> $2 OR timeframe <> $3)"
SERIES_TEST = f"(symbol, exchange, timeframe) {_CONTINUED}IS DISTINCT FROM ($1, $2, $3))"

CREATE_DELETE = """
CREATE FUNCTION public.iftb_delete_ohlcv(
    rows_from timestamptz, rows_to timestamptz, partitions_to timestamptz,
    only_symbol text DEFAULT NULL, only_exchange text DEFAULT NULL,
    only_timeframe text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dropped bigint;
    deleted bigint;
BEGIN
    -- Partitions wholly inside [rows_from, partitions_to] (holding only the one series, when
    -- one is named) go whole; what is left of [rows_from, rows_to] is deleted row by row.
    dropped := public.iftb_drop_ohlcv_partitions(
        rows_from, partitions_to, only_symbol, only_exchange, only_timeframe);
    DELETE FROM public.ohlcv
    WHERE "timestamp" BETWEEN rows_from AND rows_to
      AND (only_symbol IS NULL
           OR (symbol = only_symbol AND exchange = only_exchange AND timeframe = only_timeframe));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN dropped + deleted;
END $$"""


def _revision(name: str) -> ModuleType:
    script = op.get_context().script
    assert script is not None
    revision = script.get_revision(name)
    assert revision is not None
    return revision.module


def drop_function(text_0004: str) -> str:
    """0004's ``iftb_drop_ohlcv_partitions``, telling series apart with IS DISTINCT FROM."""
    fixed = text_0004.replace(SERIES_TEST_0004, SERIES_TEST)
    if fixed == text_0004:
        raise RuntimeError("0004's iftb_drop_ohlcv_partitions is not the text 0005 expects")
    return fixed


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(drop_function(_revision("0004").DROP))
    op.execute(CREATE_DELETE)
    op.execute(f"REVOKE EXECUTE ON FUNCTION {DELETE} FROM PUBLIC")
    op.execute(_revision("0004").carry_execute(DROP_PARTITIONS, DELETE))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION {DELETE}")
    op.execute(_revision("0004").DROP)  # CREATE OR REPLACE: keeps who may run it
