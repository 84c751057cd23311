"""The default SQLite database is private to its user: 0600 files in a 0700 directory."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from iftb.config import get_settings
from iftb.data.storage import DatabaseManager, SystemEventRepository


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def no_database_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No database variables and no ``.env``, a umask that makes files world-readable."""
    for name in list(os.environ):
        if name.startswith("DB_") or name in ("DATABASE_URL", "XDG_DATA_HOME"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    umask = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(umask)
        get_settings.cache_clear()


async def open_default_database_and_write() -> tuple[Path, set[int]]:
    """The default database's path, and the modes of its -wal and -shm files while open."""
    settings = get_settings().database
    async with DatabaseManager(settings.get_async_url()) as db, db.get_session() as session:
        await SystemEventRepository(session).log_event("probe", "info", "hello")
        path = settings.sqlite_path
        companions = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        return path, {mode(companion) for companion in companions}


@pytest.mark.usefixtures("no_database_settings")
async def test_the_default_database_is_created_0600_in_a_0700_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    monkeypatch.setenv("HOME", str(home))

    path, companion_modes = await open_default_database_and_write()

    assert path == home / ".local" / "share" / "iftb" / "iftb.db"
    assert (mode(path), companion_modes) == (0o600, {0o600})
    for created in (home / ".local", home / ".local" / "share", path.parent):
        assert mode(created) == 0o700
    assert mode(home) == 0o755


@pytest.mark.usefixtures("no_database_settings")
async def test_a_directory_the_user_already_had_keeps_its_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_home = tmp_path / "xdg"
    data_home.mkdir()
    data_home.chmod(0o755)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))

    path, _ = await open_default_database_and_write()

    assert path == data_home / "iftb" / "iftb.db"
    assert (mode(path), mode(path.parent), mode(data_home)) == (0o600, 0o700, 0o755)


@pytest.mark.usefixtures("no_database_settings")
async def test_an_existing_database_file_keeps_its_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path, _ = await open_default_database_and_write()
    path.chmod(0o640)

    await open_default_database_and_write()

    assert mode(path) == 0o640
