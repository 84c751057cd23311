"""``iftb-db serve`` as a user starts it: a real process on a free port, bound to 127.0.0.1 by
default, printing a generated token once, in the URL's fragment, that then reads the API."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from iftb.cli import app
from iftb.config import get_settings
from tests.support.cli_results import ok, refused
from tests.support.web_demo import build_demo

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """The stream's lines as they come, read by a thread (a pipe read would block the test)."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    import asyncio

    asyncio.run(build_demo(database_url))
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "IFTB_WEB_TOKEN"}
    command = [sys.executable, "-m", "iftb.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--database-url", database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_serve_prints_a_token_that_reads_the_api_on_localhost_only(
    server: tuple[subprocess.Popen[str], int], database_url: str
) -> None:
    process, port = server
    assert process.stdout is not None and process.stderr is not None
    output, errors = lines_of(process.stdout), lines_of(process.stderr)
    first = output.get(timeout=STARTUP_SECONDS)
    match = re.fullmatch(rf"dashboard: http://127\.0\.0\.1:{port}/#token=([\w-]+)\n", first)
    assert match, first
    token = match.group(1)
    assert len(token) >= 40
    scopes = _get_when_up(f"http://127.0.0.1:{port}/api/scopes", token)
    assert {"default/live", "demo/paper"} <= {scope["name"] for scope in scopes.json()}
    refused = httpx.get(f"http://127.0.0.1:{port}/api/scopes", timeout=10)
    assert refused.status_code == 401
    listening = {
        (connection.laddr.ip, connection.laddr.port)
        for connection in psutil.Process(process.pid).net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", port)}
    process.terminate()
    process.wait(timeout=15)
    logged = "".join([*_drain(output), *_drain(errors)])
    assert "GET /api/scopes" in logged  # the access log is on, and holds no token
    assert token not in logged
    # The test's PostgreSQL role is a superuser: the dashboard says it could write (SQLite has
    # no roles; its file is opened read-only).
    warned = "warning: this role can write" in " ".join(logged.split())
    assert warned == database_url.startswith("postgresql")


def _get_when_up(url: str, token: str) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        assert response.status_code == 200, response.text
        return response


def _drain(lines: queue.Queue[str]) -> list[str]:
    time.sleep(0.2)
    drained = []
    while not lines.empty():
        drained.append(lines.get_nowait())
    return drained


@pytest.mark.sqlite_only
def test_a_short_configured_token_stops_only_the_server(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IFTB_WEB_TOKEN", "short")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        served = runner.invoke(app, ["serve", "--database-url", database_url])
        refused(served, "IFTB_WEB_TOKEN: at least 16 characters")
        assert "short" not in served.output.replace("IFTB_WEB_TOKEN", "")
        ok(runner.invoke(app, ["scopes", "--database-url", database_url]))
    finally:
        get_settings.cache_clear()


@pytest.mark.sqlite_only
def test_serve_never_creates_or_migrates_a_sqlite_file(database_url: str, tmp_path: Path) -> None:
    """A mistyped path made a new empty database, and an older file was migrated (0011 to
    0012): the dashboard opens an existing file read-only and says what is wrong."""
    runner = CliRunner()
    missing = tmp_path / "mistyped.db"
    served = runner.invoke(app, ["serve", "--database-url", f"sqlite+aiosqlite:///{missing}"])
    refused(served, f"no database file at {missing}")
    assert not missing.exists()
    ok(runner.invoke(app, ["downgrade", "0012", "--database-url", database_url]))
    served = runner.invoke(app, ["serve", "--database-url", database_url])
    refused(served, "database schema is at revision 0012")
    current = runner.invoke(app, ["current", "--database-url", database_url])
    assert "0012" in current.output  # left as it was
