"""A real, throwaway PostgreSQL 15 server for the test suite and the benchmarks.

The storage layer must be tested against the real server, not an imitation, so
``throwaway_cluster()`` runs initdb into a fresh temporary directory, starts the server on a free
loopback port with durability switched off (``fsync=off``: the data is disposable, and startup
takes a couple of seconds), and removes everything afterwards, even when the block fails or the
interpreter exits early. initdb refuses to run as root, so as root every server-side command runs
as the ``postgres`` system user. ``server_from_env()`` uses an existing server instead.

Several clusters can run at once (each in its own directory, on its own port), so concurrent test
runs do not interfere. The superuser password is random per cluster and never printed.

Smoke test: ``python -m tests.support.pg_cluster``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

BIN_DIR = Path(os.environ.get("IFTB_PG_BIN", "/usr/lib/postgresql/15/bin"))
"""Where initdb, pg_ctl, postgres and pg_isready live (``IFTB_PG_BIN`` overrides it)."""

HOST = "127.0.0.1"
SUPERUSER = "postgres"
SERVER_USER = "postgres"
"""The system user that runs the server when we are root (initdb refuses root)."""

START_TIMEOUT = 30.0
"""Seconds to wait for the server to accept connections before giving up."""

SERVER_SETTINGS: tuple[tuple[str, str], ...] = (
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "200"),
    ("shared_buffers", "128MB"),
)
"""Durability off and room for many pools: the data is thrown away after the run."""

_URL_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg")
_PORT_ATTEMPTS = 5
_LOG_TAIL_CHARS = 3000


@dataclass(frozen=True)
class PostgresServer:
    """Where a PostgreSQL server listens, and its superuser.

    ``data_dir`` is None for an external server, which the tests must not stop or start. The
    password is left out of ``repr`` so that failing tests never print it.
    """

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    data_dir: Path | None = None
    settings: tuple[tuple[str, str], ...] = ()
    """Server settings on top of ``SERVER_SETTINGS`` (e.g. Citus's preload library)."""

    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        """SQLAlchemy URL (``postgresql+driver://``); ``driver=""`` gives a plain libpq URL."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"{scheme}://{credentials}@{self.host}:{self.port}/{quote(database, safe='')}"

    def libpq_env(self) -> dict[str, str]:
        """Environment for psql and pg_dump: password via PGPASSWORD, never the command line.

        It is the current environment without stray ``PG*`` variables (a developer's PGDATABASE
        or PGSERVICE must not redirect the tests) plus PGHOST, PGPORT, PGUSER and PGPASSWORD, so
        it can be passed to ``subprocess.run(env=...)`` as is.
        """
        return {
            **_without_libpq_variables(os.environ),
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
        }

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (for fault-injection tests); only for throwaway clusters."""
        data_dir = self._own_data_dir()
        _server_command(
            [_bin("pg_ctl"), "-D", str(data_dir), "-m", mode, "-w", "-t", "30", "stop"],
            cwd=data_dir.parent,
        )

    def start(self) -> None:
        """Start the server again on the same port and data directory, and wait until ready."""
        self._start()

    def _start(self) -> None:
        data_dir = self._own_data_dir()
        root = data_dir.parent
        log = _log_file(root)
        log_offset = log.stat().st_size if log.exists() else 0
        settings = (
            *SERVER_SETTINGS,
            *self.settings,
            ("listen_addresses", self.host),
            ("port", str(self.port)),
            ("unix_socket_directories", str(root)),
        )
        # pg_ctl hands -o to /bin/sh, hence the shell quoting of each value.
        options = " ".join(f"-c {name}={shlex.quote(value)}" for name, value in settings)
        started = _server_command(
            [
                _bin("pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "start",
            ],
            cwd=root,
            check=False,
        )
        if started.returncode != 0:
            new_log = _read_log(log, log_offset)
            error = _PortInUseError if "Address already in use" in new_log else RuntimeError
            raise error(
                f"pg_ctl start failed (port {self.port}): {started.stderr.strip()}\n"
                f"--- server log ---\n{new_log[-_LOG_TAIL_CHARS:]}"
            )
        _wait_until_ready(self, log, log_offset)

    def _own_data_dir(self) -> Path:
        if self.data_dir is None:
            raise RuntimeError("an external server cannot be stopped or started by the tests")
        return self.data_dir


class ClientCommandError(subprocess.CalledProcessError):
    """A psql or pg_dump failure whose message carries the tool's stderr (the useful part)."""

    def __str__(self) -> str:
        detail = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{detail[-_LOG_TAIL_CHARS:]}"


class _PortInUseError(RuntimeError):
    """Another process took the free port between our probe and the server's bind."""


def postgres_binaries_available() -> bool:
    """Whether a throwaway cluster can be made here (binaries, psql, and as root a server user)."""
    server_tools = ("initdb", "pg_ctl", "postgres", "pg_isready")
    if not all(os.access(BIN_DIR / tool, os.X_OK) for tool in server_tools):
        return False
    if shutil.which("psql") is None or shutil.which("pg_dump") is None:
        return False
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return False
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return False
    return True


def server_from_env(var: str = "IFTB_TEST_POSTGRES_URL") -> PostgresServer | None:
    """The existing server named by ``$var``, or None when the variable is unset or empty.

    The URL is a ``postgresql://`` (or ``postgresql+asyncpg://``) URL; its database part is
    ignored, since the tests create their own databases.
    """
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(f"{var}: expected a postgresql:// URL, got scheme {parts.scheme!r}")
    return PostgresServer(
        host=parts.hostname or HOST,
        port=parts.port or 5432,
        user=unquote(parts.username or SUPERUSER),
        password=unquote(parts.password or ""),
    )


@contextmanager
def throwaway_cluster(
    settings: tuple[tuple[str, str], ...] = (), host_auth: str = "scram-sha-256"
) -> Iterator[PostgresServer]:
    """A fresh cluster on a free loopback port, removed (even on error) when the block ends.

    initdb uses ``host_auth`` (scram-sha-256 unless told) for TCP and trust for the private Unix
    socket; the server listens on 127.0.0.1 only. The cluster is also removed at interpreter
    exit if the block never ends.
    """
    root = Path(tempfile.mkdtemp(prefix="iftb-pg-", dir=_temp_parent()))
    data_dir = root / "data"
    _live_clusters[root] = data_dir
    try:
        password = secrets.token_urlsafe(24)
        _init_cluster(root, data_dir, password, host_auth)
        server = _start_on_free_port(
            PostgresServer(HOST, 0, SUPERUSER, password, data_dir, settings)
        )
        yield server
    finally:
        _remove_cluster(root)


def run_psql(
    server: PostgresServer,
    database: str,
    sql: Path | str,
    *,
    variables: Mapping[str, str] | None = None,
) -> str:
    """Run SQL with psql, stopping at the first error; returns psql's output.

    ``sql`` is a file when it is a ``Path`` and SQL text (one or more statements) when it is a
    ``str``; ``variables`` become ``psql -v name=value``, usable as ``:name`` / ``:'name'``.
    """
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database]
    for name, value in (variables or {}).items():
        command += ["-v", f"{name}={value}"]
    if isinstance(sql, Path):
        return _client_command(server, [*command, "-f", str(sql)])
    # Fed as a script rather than with -c, so that :variables and several statements work.
    return _client_command(server, [*command, "-f", "-"], stdin=sql)


def pg_dump_schema(server: PostgresServer, database: str) -> str:
    """The schema of ``database`` as pg_dump prints it (no owners, no privileges), for diffs."""
    return _client_command(
        server,
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-d", database],
    )


# --- internals -------------------------------------------------------------------------------

_live_clusters: dict[Path, Path] = {}
"""Temp root -> data dir of every cluster not yet removed, for the atexit safety net."""
_cleanup_lock = threading.Lock()


def _bin(tool: str) -> str:
    return str(BIN_DIR / tool)


def _log_file(root: Path) -> Path:
    return root / "server.log"


def _without_libpq_variables(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if not name.startswith("PG")}


def _temp_parent() -> str | None:
    """The system temp dir, or /tmp when the server user could not reach into it (root only)."""
    if os.geteuid() != 0:
        return None
    default = Path(tempfile.gettempdir()).resolve()
    for directory in (default, *default.parents):
        if not directory.stat().st_mode & stat.S_IXOTH:
            return "/tmp"
    return None


def _init_cluster(root: Path, data_dir: Path, password: str, host_auth: str) -> None:
    """initdb with the superuser password from a private file (never on a command line)."""
    password_file = root / "pwfile"
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER, SERVER_USER)
        shutil.chown(password_file, SERVER_USER, SERVER_USER)
    try:
        _server_command(
            [
                _bin("initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                f"--pwfile={password_file}",
                f"--auth-host={host_auth}",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=root,
        )
    finally:
        password_file.unlink(missing_ok=True)


def _start_on_free_port(server: PostgresServer) -> PostgresServer:
    """Start on a free port, trying another one if a concurrent process grabbed it first."""
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        candidate = replace(server, port=_free_port())
        try:
            candidate._start()
        except _PortInUseError:
            if attempt == _PORT_ATTEMPTS:
                raise
            continue
        return candidate
    raise AssertionError("unreachable")


def _server_command(
    command: list[str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a server-side tool, as the server user when we are root; stderr in the error."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", SERVER_USER, "--", *command]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=_without_libpq_variables(os.environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=START_TIMEOUT + 30,
    )
    if check and result.returncode != 0:
        tool = next((Path(part).name for part in command if part.startswith(str(BIN_DIR))), "?")
        raise RuntimeError(
            f"{tool} failed with exit status {result.returncode}: "
            f"{result.stderr.strip()[-_LOG_TAIL_CHARS:]}"
        )
    return result


def _client_command(server: PostgresServer, command: list[str], stdin: str = "") -> str:
    result = subprocess.run(
        command,
        env=server.libpq_env(),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ClientCommandError(result.returncode, command, result.stdout, result.stderr)
    return result.stdout


def _wait_until_ready(server: PostgresServer, log: Path, log_offset: int) -> None:
    """Wait until the server accepts TCP connections (pg_ctl -w only watches the pid file)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        probe = subprocess.run(
            [_bin("pg_isready"), "-q", "-h", server.host, "-p", str(server.port), "-t", "2"],
            env=_without_libpq_variables(os.environ),
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"PostgreSQL on {server.host}:{server.port} did not accept connections within "
                f"{START_TIMEOUT:.0f} s\n--- server log ---\n"
                f"{_read_log(log, log_offset)[-_LOG_TAIL_CHARS:]}"
            )
        time.sleep(0.05)


def _read_log(log: Path, offset: int = 0) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _remove_cluster(root: Path) -> None:
    """Stop the server at once (immediate: the data is thrown away) and delete its directory."""
    with _cleanup_lock:
        data_dir = _live_clusters.pop(root, None)
    if data_dir is None:
        return
    try:
        if (data_dir / "postmaster.pid").exists():
            _server_command(
                [_bin("pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "-t", "30", "stop"],
                cwd=root,
                check=False,
            )
        _kill_postmaster(data_dir)  # pg_ctl failed or timed out: do what it would have done.
    except (OSError, subprocess.SubprocessError):
        _kill_postmaster(data_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data_dir: Path) -> None:
    """SIGQUIT (immediate shutdown) to a postmaster that is still there, if any."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        # A stale pid file may name an unrelated process: only signal our own postmaster.
        if str(data_dir).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError):
        return  # No pid file or no such process: nothing left to stop.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


@atexit.register
def _remove_leftover_clusters() -> None:
    """Safety net for a process that exits without leaving the ``with`` block."""
    for root in list(_live_clusters):
        _remove_cluster(root)


def _smoke_test() -> None:
    """Start a cluster, ask it for its version over asyncpg, stop it, print the version."""
    import asyncio

    import asyncpg

    async def version(server: PostgresServer) -> str:
        connection = await asyncpg.connect(server.url(driver=""))
        try:
            return str(await connection.fetchval("SELECT version()"))
        finally:
            await connection.close()

    began = time.monotonic()
    with throwaway_cluster() as cluster:
        started = time.monotonic() - began
        answer = asyncio.run(version(cluster))
        cluster.stop()
    print(answer)
    print(f"cluster started in {started:.1f} s, {time.monotonic() - began:.1f} s in all")


if __name__ == "__main__":
    _smoke_test()
