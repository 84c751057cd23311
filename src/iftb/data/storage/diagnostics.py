"""What ``iftb-db doctor`` reports: the server, the schema revision, settings and table sizes.

Works on a database whose schema is behind or absent (that is what a doctor is asked about),
so it reads through the engine directly rather than through a checked connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from iftb.data.storage import migrations
from iftb.data.storage.distribution import citus_version
from iftb.data.storage.models import Base


@dataclass(slots=True)
class Diagnosis:
    """A snapshot of one database, for people."""

    backend: str
    server_version: str
    revision: str | None
    head: str | None
    settings: dict[str, str] = field(default_factory=dict)
    tables: dict[str, int | None] = field(default_factory=dict)
    size_bytes: int | None = None
    distributed_bytes: dict[str, int] = field(default_factory=dict)
    """Citus: the size of each distributed table on the workers, shards and indexes included."""

    @property
    def schema_current(self) -> bool:
        return self.revision == self.head

    @property
    def schema_state(self) -> str:
        """``up to date``, behind (run upgrade), or newer than this code (upgrade iftb)."""
        if self.schema_current:
            return "up to date"
        if self.revision is not None and not migrations.is_known_revision(self.revision):
            return "newer than this code: upgrade iftb"
        return "behind: run `iftb-db upgrade`"


# A distributed table's rows live in its shards on the workers (the coordinator's own copy is
# empty): its size and estimate are summed over the shards of its partitions, or of itself.
_DISTRIBUTED = text("""
SELECT t.logicalrelid::text AS name,
       pg_catalog.citus_total_relation_size(t.logicalrelid) AS bytes,
       CASE WHEN pg_catalog.bool_and(r.result::float8 < 0) THEN -1
            ELSE pg_catalog.sum(GREATEST(r.result::float8, 0))::bigint END AS estimate
FROM pg_catalog.pg_dist_partition t
LEFT JOIN pg_catalog.pg_inherits i ON i.inhparent = t.logicalrelid
CROSS JOIN LATERAL pg_catalog.run_command_on_shards(
    coalesce(i.inhrelid, t.logicalrelid)::pg_catalog.regclass,
    $$SELECT reltuples FROM pg_catalog.pg_class WHERE oid = '%s'::pg_catalog.regclass$$) r
WHERE t.logicalrelid NOT IN (SELECT inhrelid FROM pg_catalog.pg_inherits)
GROUP BY t.logicalrelid""")


async def diagnose(connection: AsyncConnection, settings: dict[str, str]) -> Diagnosis:
    """Read the server version, revision, backend settings and row counts of every table.

    On PostgreSQL, row counts are the planner's estimates (``pg_class.reltuples``): exact counts
    of a billion-row table would take minutes. ``settings`` are the client-side ones (pool).
    """
    dialect = connection.dialect.name
    revision = await connection.run_sync(migrations.current_revision)
    report = Diagnosis(
        backend=dialect,
        server_version="",
        revision=revision,
        head=migrations.head_revision(),
        settings=dict(settings),
    )
    tables = [table.name for table in Base.metadata.sorted_tables]
    if dialect == "sqlite":
        report.server_version = "SQLite " + str(
            await connection.scalar(text("SELECT sqlite_version()"))
        )
        for pragma in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
            value = await connection.scalar(text(f"PRAGMA {pragma}"))
            report.settings[pragma] = str(value)
        pages = await connection.scalar(text("PRAGMA page_count"))
        page_size = await connection.scalar(text("PRAGMA page_size"))
        report.size_bytes = int(pages or 0) * int(page_size or 0)
        existing = set(await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync)))
        for name in tables:
            table = Base.metadata.tables[name]
            report.tables[name] = (
                int(await connection.scalar(select(func.count()).select_from(table)) or 0)
                if name in existing
                else None
            )
        return report
    report.server_version = str(await connection.scalar(text("SHOW server_version")))
    for name in (
        "max_connections",
        "ssl",
        "timezone",
        "shared_buffers",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
    ):
        report.settings[name] = str(await connection.scalar(text(f"SHOW {name}")))
    report.size_bytes = int(
        await connection.scalar(text("SELECT pg_database_size(current_database())")) or 0
    )
    estimates = await connection.execute(
        text(
            "SELECT c.relname, c.reltuples::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(:names)"
        ),
        {"names": tables},
    )
    found = {row[0]: int(row[1]) for row in estimates}
    if await citus_version(connection) is not None:
        for row in await connection.execute(_DISTRIBUTED):
            report.distributed_bytes[row.name] = int(row.bytes)
            found[row.name] = int(row.estimate)
    for name in tables:
        if name in found and found[name] < 0:  # never analysed (so still small): count exactly
            table = Base.metadata.tables[name]
            found[name] = int(await connection.scalar(select(func.count()).select_from(table)) or 0)
        report.tables[name] = found.get(name)
    return report
