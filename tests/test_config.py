"""Settings: zero-config SQLite, PostgreSQL from DB_* or DATABASE_URL, errors naming variables."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iftb.config import ConfigError, get_settings

VARIABLES = [
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DB_USERNAME",
    "DB_PASSWORD",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_SQLITE_PATH",
    "DB_SSLMODE",
    "LOG_LEVEL",
    "LOG_FORMAT",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_no_settings_at_all_gives_a_sqlite_file_under_xdg_data_home(tmp_path: Path) -> None:
    url = get_settings().database.get_async_url()
    assert url == f"sqlite+aiosqlite:///{tmp_path}/xdg/iftb/iftb.db"


def test_db_sqlite_path_overrides_the_default_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_SQLITE_PATH", "/data/bot.db")
    assert get_settings().database.get_async_url() == "sqlite+aiosqlite:////data/bot.db"


def test_db_parts_give_an_asyncpg_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DB_HOST": "db.internal",
        "DB_PORT": "6543",
        "DB_DATABASE": "bot",
        "DB_USERNAME": "trader",
        "DB_PASSWORD": "s3cr3t",
        "DB_POOL_SIZE": "7",
        "DB_MAX_OVERFLOW": "3",
    }.items():
        monkeypatch.setenv(name, value)
    database = get_settings().database
    assert database.get_async_url() == "postgresql+asyncpg://trader:s3cr3t@db.internal:6543/bot"
    assert (database.pool_size, database.max_overflow) == (7, 3)


def test_database_url_wins_and_is_given_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "ignored")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h:5432/d")
    assert get_settings().database.get_async_url() == "postgresql+asyncpg://u:p@h:5432/d"


def test_sslmode_is_passed_to_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "h")
    monkeypatch.setenv("DB_SSLMODE", "verify-full")
    assert get_settings().database.get_async_url().endswith("?ssl=verify-full")


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DB_HOST=from-dotenv\nDB_PASSWORD=pw\n")
    assert "@from-dotenv:5432/" in get_settings().database.get_async_url()


def test_a_non_numeric_port_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PORT", "fivefourthreetwo")
    with pytest.raises(ConfigError, match="^DB_PORT: "):
        get_settings()


def test_an_unknown_url_scheme_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://u:p@h/d")
    with pytest.raises(ConfigError, match="^DATABASE_URL: unsupported scheme 'mysql'"):
        get_settings()


def test_the_password_never_appears_in_reprs_or_the_safe_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_HOST", "h")
    monkeypatch.setenv("DB_PASSWORD", "hunter2-secret")
    settings = get_settings()
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings)
    assert "hunter2-secret" not in settings.database.safe_url()


def test_settings_are_cached() -> None:
    assert get_settings() is get_settings()


@pytest.mark.parametrize("password", ["p@ss:w0rd", "p@ss", "@lead", "tr@il@"])
def test_a_password_may_hold_at_signs_and_colons_as_written(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://iftb:{password}@127.0.0.1:6543/db")
    url = get_settings().database.url_object()
    assert (url.password, url.host, url.port, url.database) == (password, "127.0.0.1", 6543, "db")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://iftb:p@ss:w0rd@127.0.0.1:notaport/db",
        "postgresql://iftb:hunter2secret@[::1/db",
    ],
)
def test_a_malformed_url_is_a_clear_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError, match="^DATABASE_URL: not a valid database URL") as refused:
        get_settings()
    assert not {"ss", "w0rd", "hunter2", "secret"} & set(str(refused.value).split())
    assert "hunter2" not in str(refused.value) and "w0rd" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://iftb:p@ss:w0rd@127.0.0.1:notaport/db", "not a valid database URL"),
        ("postgresql://iftb:p@ss@127.0.0.1:1/db", "cannot connect to PostgreSQL at 127.0.0.1:1"),
    ],
)
def test_every_command_reports_a_bad_url_in_one_line(url: str, shown: str) -> None:
    """``--help`` works; a command says what is wrong in one line, exit 1: no traceback, and
    nothing of the password (``p@ss`` once showed as "cannot connect ... at ss@127.0.0.1")."""
    command = [str(Path(sys.executable).parent / "iftb-db")]
    environment = os.environ | {"DATABASE_URL": url}
    helped = subprocess.run([*command, "--help"], env=environment, capture_output=True, text=True)
    assert helped.returncode == 0 and "Usage" in helped.stdout
    ran = subprocess.run([*command, "current"], env=environment, capture_output=True, text=True)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 1 and shown in " ".join(output.split())
    assert "Traceback" not in output and "ss@" not in output and "w0rd" not in output
