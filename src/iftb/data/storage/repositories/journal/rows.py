"""Where the backends differ for journal rows: bulk writes and deleting a backtest run.

Bulk writes take rows already checked by their records and send them the fastest way each
driver has: binary COPY on the session's own asyncpg connection (inside its transaction) on
PostgreSQL, one ``executemany`` of values in their stored form on SQLite. Values go through the
columns' own bind processing first, so what lands equals what an ORM insert would store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase

from iftb.data.storage.errors import translated_errors
from iftb.data.storage.models import BacktestRunModel, TradeModel

SQLITE_CHUNK = 5_000


async def bulk_insert(
    connection: AsyncConnection,
    model: type[DeclarativeBase],
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
) -> int:
    """Insert ``rows`` (each a value per name of ``columns``) in one bulk call; their count."""
    dialect = connection.dialect
    table: Table = model.__table__  # type: ignore[assignment]
    # the dialect's own implementation of each type (an ExactNumeric's text form on SQLite)
    process = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
    tuples = [
        tuple(
            value if convert is None or value is None else convert(value)
            for convert, value in zip(process, (row[name] for name in columns), strict=True)
        )
        for row in rows
    ]
    with translated_errors():
        if dialect.name == "postgresql":
            driver: Any = (await connection.get_raw_connection()).driver_connection
            await driver.copy_records_to_table(table.name, records=tuples, columns=list(columns))
        else:
            names = ", ".join(f'"{name}"' for name in columns)
            marks = ", ".join("?" * len(columns))
            statement = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'
            for start in range(0, len(tuples), SQLITE_CHUNK):
                await connection.exec_driver_sql(statement, tuples[start : start + SQLITE_CHUNK])
    return len(tuples)


async def delete_run(connection: AsyncConnection, run_id: int) -> int | None:
    """Delete a backtest run and, by the cascade, every journal row of it; the number of its
    trades, or None when there is no such run. On PostgreSQL through
    ``iftb_delete_backtest_run``, so the bot role deletes backtest rows and nothing else."""
    with translated_errors():
        if connection.dialect.name == "postgresql":
            result = await connection.execute(select(func.iftb_delete_backtest_run(run_id)))
            deleted = result.scalar_one()
            return None if deleted is None else int(deleted)
        trades = await connection.execute(
            select(func.count()).select_from(TradeModel).where(TradeModel.run_id == run_id)
        )
        count = int(trades.scalar_one())
        gone = await connection.execute(
            delete(BacktestRunModel).where(BacktestRunModel.id == run_id)
        )
        return count if gone.rowcount else None
