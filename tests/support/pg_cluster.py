"""A real, throwaway PostgreSQL 15 server for the test suite and the benchmarks.

``throwaway_cluster()`` runs initdb into a temporary directory, starts the server on a free
loopback port with durability switched off (``fsync=off``: the data is disposable), and removes
everything afterwards. initdb refuses to run as root, so as root the server commands run as the
``postgres`` system user. ``server_from_env()`` uses an existing server instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

BIN_DIR = Path(os.environ.get("IFTB_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=128MB"
)


@dataclass(frozen=True)
class PostgresServer:
    """Where a PostgreSQL server listens, and its superuser."""

    host: str
    port: int
    user: str
    password: str
    data_dir: Path | None = None

    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        credentials = f"{quote(self.user)}:{quote(self.password, safe='')}"
        return f"{scheme}://{credentials}@{self.host}:{self.port}/{database}"

    def libpq_env(self) -> dict[str, str]:
        """Environment for psql and pg_dump (password via PGPASSWORD, not the command line)."""
        return {
            **os.environ,
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
        }

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (for fault tests); only for throwaway clusters."""
        data_dir = self._own_data_dir()
        _server_command([str(BIN_DIR / "pg_ctl"), "-D", str(data_dir), "-m", mode, "-w", "stop"])

    def start(self) -> None:
        """Start the server again on the same port and data directory, and wait until ready."""
        data_dir = self._own_data_dir()
        _server_command(
            [
                str(BIN_DIR / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(data_dir / "server.log"),
                "-o",
                f"{SERVER_OPTIONS} -c listen_addresses={self.host} -c port={self.port} "
                f"-c unix_socket_directories={data_dir}",
                "-w",
                "-t",
                "30",
                "start",
            ]
        )
        _wait_until_ready(self)

    def _own_data_dir(self) -> Path:
        if self.data_dir is None:
            raise RuntimeError("an external server cannot be stopped or started by the tests")
        return self.data_dir


def postgres_binaries_available() -> bool:
    return (BIN_DIR / "initdb").is_file() and shutil.which("psql") is not None


def server_from_env(var: str = "IFTB_TEST_POSTGRES_URL") -> PostgresServer | None:
    """The server named by ``$var`` (a ``postgresql://`` URL), or None when it is unset."""
    raw = os.environ.get(var)
    if not raw:
        return None
    parts = urlsplit(raw)
    return PostgresServer(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
    )


@contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    """A fresh cluster on a free loopback port, removed (even on error) when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="iftb-pg-"))
    data_dir = root / "data"
    server = PostgresServer(
        "127.0.0.1", _free_port(), "postgres", secrets.token_urlsafe(18), data_dir
    )
    try:
        _init_cluster(root, data_dir, server.password)
        server.start()
        yield server
    finally:
        if (data_dir / "postmaster.pid").exists():
            _server_command(
                [str(BIN_DIR / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def run_psql(server: PostgresServer, database: str, sql_file: Path) -> None:
    """Apply a SQL file with psql, stopping at the first error."""
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-f", str(sql_file)],
        env=server.libpq_env(),
        check=True,
        capture_output=True,
        text=True,
    )


def pg_dump_schema(server: PostgresServer, database: str) -> str:
    """The schema of ``database`` as pg_dump prints it (no owners, no privileges)."""
    return subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-d", database],
        env=server.libpq_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _init_cluster(root: Path, data_dir: Path, password: str) -> None:
    password_file = root / "pwfile"
    password_file.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")
    _server_command(
        [
            str(BIN_DIR / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    password_file.unlink()


def _server_command(command: list[str], check: bool = True) -> None:
    """Run a server-side command, as the postgres user when we are root."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{Path(command[-1]).name} failed: {result.stderr.strip()[-2000:]}")


def _wait_until_ready(server: PostgresServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(BIN_DIR / "pg_isready"), "-h", server.host, "-p", str(server.port)],
            capture_output=True,
            check=False,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    log = server.data_dir / "server.log" if server.data_dir else None
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"PostgreSQL did not become ready within {timeout:.0f} s\n{tail}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    import asyncio

    import asyncpg

    async def _version(server: PostgresServer) -> str:
        connection = await asyncpg.connect(server.url(driver=""))
        try:
            return str(await connection.fetchval("SELECT version()"))
        finally:
            await connection.close()

    with throwaway_cluster() as cluster:
        print(asyncio.run(_version(cluster)))
