"""Settings: the only place the environment (and a ``.env`` file) is read.

With no database settings at all the library uses an embedded SQLite file (zero configuration).
``DATABASE_URL`` wins over the ``DB_*`` parts; ``DB_HOST`` selects PostgreSQL.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_ENV = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


MAX_TIMEOUT = 2_147_483
"""The longest timeout, in seconds: PostgreSQL's limits are 32-bit milliseconds, SQLite's busy
timeout a C int."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def default_sqlite_path() -> Path:
    """``$XDG_DATA_HOME/iftb/iftb.db`` (``~/.local/share/iftb/iftb.db`` when XDG is unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "iftb" / "iftb.db"


class DatabaseSettings(BaseSettings):
    """Database connection settings (``DB_*`` variables, or ``DATABASE_URL``)."""

    model_config = SettingsConfigDict(**_ENV, env_prefix="DB_")

    url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    host: str | None = None
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "iftb"
    username: str = "iftb"
    password: SecretStr | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )
    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    sqlite_path: Path = Field(default_factory=default_sqlite_path)
    retry_attempts: int = Field(default=5, ge=1)
    retry_initial_delay: float = Field(default=0.2, ge=0)
    retry_max_delay: float = Field(default=5.0, ge=0)
    # Bounded waits, in seconds (see docs/reliability.md). PostgreSQL limits: 0 turns one off.
    statement_timeout: float = Field(default=30.0, ge=0, le=MAX_TIMEOUT)
    lock_timeout: float = Field(default=10.0, ge=0, le=MAX_TIMEOUT)
    idle_in_transaction_timeout: float = Field(default=60.0, ge=0, le=MAX_TIMEOUT)
    busy_timeout: float = Field(
        default=30.0, ge=0, le=MAX_TIMEOUT
    )  # SQLite: a writer's wait for the lock
    pool_timeout: float = Field(
        default=30.0, ge=0, le=MAX_TIMEOUT
    )  # a unit of work's wait for a connection
    ohlcv_partition_unit: Literal["week", "month", "quarter", "year"] = "month"

    def get_async_url(self) -> str:
        """The SQLAlchemy async URL: asyncpg for PostgreSQL, aiosqlite for the embedded default.

        The string contains the password (the engine needs it); never log it — log
        ``safe_url()`` instead.
        """
        return self.url_object().render_as_string(hide_password=False)

    def safe_url(self) -> str:
        """The URL with the password masked, for logs and messages."""
        return self.url_object().render_as_string(hide_password=True)

    def url_object(self) -> URL:
        if self.url is not None:
            url = _parse_url(self.url.get_secret_value())
        elif self.host:
            url = URL.create(
                "postgresql+asyncpg",
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                host=self.host,
                port=self.port,
                database=self.database,
            )
        else:
            return URL.create("sqlite+aiosqlite", database=str(self.sqlite_path))
        if self.sslmode and url.get_backend_name() == "postgresql":
            url = url.update_query_dict({"ssl": self.sslmode})
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.url_object().get_backend_name() == "sqlite"


class LogSettings(BaseSettings):
    """Logging settings (``LOG_LEVEL``, ``LOG_FORMAT``)."""

    model_config = SettingsConfigDict(**_ENV, env_prefix="LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["console", "json"] = "console"


class WebSettings(BaseSettings):
    """The dashboard's settings (``IFTB_WEB_TOKEN``): without a token, ``iftb-db serve``
    generates one at start."""

    model_config = SettingsConfigDict(**_ENV, env_prefix="IFTB_WEB_")

    # checked by the server (at least 16 characters), so that a bad one stops only the server
    token: SecretStr | None = None


class Settings(BaseSettings):
    """All settings of the storage layer."""

    model_config = _ENV

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    web: WebSettings = Field(default_factory=WebSettings)


def _parse_url(raw: str) -> URL:
    try:
        return to_async_url(raw)
    except ConfigError as exc:
        raise ConfigError(f"DATABASE_URL: {exc}") from None


def to_async_url(raw: str | URL) -> URL:
    """The async-driver form of a database URL (``postgresql://`` → ``postgresql+asyncpg://``).

    A password may hold ``@`` and ``:`` as written (``postgres://iftb:p@ss:w0rd@host/db``): the
    host follows the last ``@`` of the authority. Any other character a URL reserves must be
    percent-encoded, or the password given as ``DB_PASSWORD``. No error repeats the URL: a
    malformed one may hold a password.
    """
    try:
        url = make_url(raw if isinstance(raw, URL) else _password_escaped(raw))
    except (ArgumentError, ValueError):
        raise ConfigError(
            "not a valid database URL (percent-encode reserved characters in the password, "
            "e.g. %2F for '/', or give it as DB_PASSWORD)"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(
            f"unsupported scheme {url.drivername!r} "
            "(use postgresql://, postgresql+asyncpg://, sqlite:// or sqlite+aiosqlite://)"
        )
    return url.set(drivername=driver)


def _password_escaped(raw: str) -> str:
    """``raw`` with its user and password percent-encoded when the password holds an ``@``
    (the authority then has several): the host follows the last one before the path."""
    scheme, separator, rest = raw.partition("://")
    authority_end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    if not separator or authority.count("@") < 2:
        return raw
    userinfo, _, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    escaped = f"{quote(user, safe='')}{colon}{quote(password, safe='')}"
    return f"{scheme}://{escaped}@{host}{rest[authority_end:]}"


_PREFIXES = {DatabaseSettings: "DB_", LogSettings: "LOG_", WebSettings: "IFTB_WEB_"}


def _load(kind: type[BaseSettings]) -> BaseSettings:
    try:
        return kind()
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            variable = (
                "DATABASE_URL" if field == "DATABASE_URL" else _PREFIXES[kind] + field.upper()
            )
            problems.append(f"{variable}: {error['msg']}")
        raise ConfigError("; ".join(problems)) from None


def get_log_settings() -> LogSettings:
    """The logging settings alone: logging is set up at import, before any command runs, and
    must not fail on a database URL that the command will report."""
    log = _load(LogSettings)
    assert isinstance(log, LogSettings)
    return log


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (call ``get_settings.cache_clear()`` to re-read)."""
    database = _load(DatabaseSettings)
    log = _load(LogSettings)
    web = _load(WebSettings)
    assert isinstance(database, DatabaseSettings)
    assert isinstance(log, LogSettings)
    assert isinstance(web, WebSettings)
    settings = Settings(database=database, log=log, web=web)
    settings.database.url_object()  # fail now, naming DATABASE_URL, on an unusable URL
    return settings
