"""A real, throwaway Citus cluster: a coordinator and two workers on loopback, for the Citus tier.

Each node is a throwaway PostgreSQL 15 cluster (see ``pg_cluster``) with Citus preloaded and
two-phase commit enabled (Citus writes across shards with it). The workers trust loopback TCP, so
the coordinator reaches them as any role without a password file; the coordinator itself keeps
scram-sha-256, which the tests of passwords and roles talk to, and reaches itself as the
superuser with the password in ``pg_dist_authinfo``.

Citus 12.1 does not propagate ``CREATE DATABASE``: a database of the cluster is a database of the
same name on every node, with the extension in each and the workers registered on the
coordinator (``create_database``). A migrated, distributed database serves as a template: cloning
it on every node gives a new database whose shards and metadata already agree, in a fraction of
the time a fresh setup takes. Citus's maintenance daemon keeps a connection to every database
that uses the extension, which would block the clone, so ``seal_template`` forbids connections
to the template and ends the daemon (its restarts then fail to connect and leave it alone).

Smoke test: ``python -m tests.support.citus_cluster``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.support.pg_cluster import BIN_DIR, HOST, PostgresServer, throwaway_cluster

CITUS_SETTINGS: tuple[tuple[str, str], ...] = (
    ("shared_preload_libraries", "citus"),
    ("max_prepared_transactions", "200"),
    ("citus.max_client_connections", "200"),
)
"""Citus must be preloaded; two-phase commit needs prepared transactions."""

WORKERS = 2
DROP_ATTEMPTS = 5


@dataclass(frozen=True)
class CitusCluster:
    """The coordinator (which applications talk to) and the workers that hold the shards."""

    coordinator: PostgresServer
    workers: tuple[PostgresServer, ...]

    @property
    def nodes(self) -> tuple[PostgresServer, ...]:
        return (self.coordinator, *self.workers)


def citus_available() -> bool:
    """Whether Citus is installed into the PostgreSQL binaries the tests use."""
    libdir = Path(os.environ.get("IFTB_PG_LIB", BIN_DIR.parent / "lib"))
    return (libdir / "citus.so").exists()


@contextmanager
def throwaway_citus_cluster(workers: int = WORKERS) -> Iterator[CitusCluster]:
    """A coordinator and ``workers`` workers, each a throwaway cluster, all removed afterwards."""
    with ExitStack() as stack:
        coordinator = stack.enter_context(throwaway_cluster(CITUS_SETTINGS))
        nodes = tuple(
            stack.enter_context(throwaway_cluster(CITUS_SETTINGS, host_auth="trust"))
            for _ in range(workers)
        )
        yield CitusCluster(coordinator, nodes)


async def create_database(cluster: CitusCluster, name: str, template: str | None = None) -> None:
    """Create ``name`` on every node: a clone of ``template``, or a new Citus database."""
    clone = f' TEMPLATE "{template}"' if template else ""
    await asyncio.gather(
        *(_execute(node, f'CREATE DATABASE "{name}"{clone}') for node in cluster.nodes)
    )
    if template:
        return
    await asyncio.gather(
        *(_execute(node, "CREATE EXTENSION citus", name) for node in cluster.nodes)
    )
    statements = [f"SELECT citus_set_coordinator_host('{HOST}', {cluster.coordinator.port})"]
    statements += [f"SELECT citus_add_node('{HOST}', {worker.port})" for worker in cluster.workers]
    await _execute(cluster.coordinator, ";".join(statements), name)
    # The coordinator also connects to itself (table sizes, some maintenance): as the
    # superuser, with its password (which is kept out of the SQL text by the driver).
    coordinator = await asyncpg.connect(cluster.coordinator.url(name, driver=""))
    try:
        await coordinator.execute(
            "INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) SELECT nodeid, $1, "
            "'password=' || $2 FROM pg_dist_node WHERE groupid = 0",
            cluster.coordinator.user,
            cluster.coordinator.password,
        )
    finally:
        await coordinator.close()


async def seal_template(cluster: CitusCluster, name: str) -> None:
    """Make ``name`` cloneable: no connections allowed, the maintenance daemons ended."""
    for node in cluster.nodes:
        await _execute(
            node,
            f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false;'
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )


async def drop_database(cluster: CitusCluster, name: str) -> None:
    """Drop ``name`` on every node (connections to it are ended), the coordinator first: its
    connections to the workers' copies end with it."""
    for node in cluster.nodes:
        for attempt in range(1, DROP_ATTEMPTS + 1):
            try:
                await _execute(node, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except asyncpg.ObjectInUseError:
                # A connection Citus opened between the nodes was still arriving or leaving.
                if attempt == DROP_ATTEMPTS:
                    raise
                await asyncio.sleep(0.2 * attempt)


async def _execute(node: PostgresServer, sql: str, database: str = "postgres") -> None:
    connection = await asyncpg.connect(node.url(database, driver=""))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _smoke_test() -> None:
    """Start a cluster, make a distributed table, count its shard placements per worker."""

    async def placements(cluster: CitusCluster) -> list[asyncpg.Record]:
        await create_database(cluster, "smoke")
        connection = await asyncpg.connect(cluster.coordinator.url("smoke", driver=""))
        try:
            await connection.execute("CREATE TABLE t (k text, v int)")
            await connection.execute("SELECT create_distributed_table('t', 'k', shard_count => 4)")
            await connection.execute("INSERT INTO t SELECT g::text, g FROM generate_series(1, 9) g")
            return list(
                await connection.fetch(
                    "SELECT nodeport, count(*) FROM pg_dist_shard_placement GROUP BY 1"
                )
            )
        finally:
            await connection.close()

    with throwaway_citus_cluster() as cluster:
        print(asyncio.run(placements(cluster)))


if __name__ == "__main__":
    _smoke_test()
