"""The data directory is 0700, the SQLite files and their side files 0600; key files others
can read or write are named at start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.clock import FixedClock
from domain.unknown_user import UnknownUserLogin
from interfaces.composition import build_application, build_views, operator_token, secret_box
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest, make_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    # The usual umask: without the fix, files come out 0644 and directories 0755.
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def sqlite_settings(tmp_path: Path) -> Settings:
    database = DatabaseUnderTest("sqlite", f"sqlite:///{tmp_path / 'store' / 'aero.db'}")
    return make_settings(database, tmp_path, secret_key=None)


def test_the_sqlite_files_and_their_wal_and_shm_are_0600(tmp_path: Path, clock: FixedClock) -> None:
    settings = sqlite_settings(tmp_path)
    app = build_application(settings, clock=clock)
    views = build_views(settings)
    try:
        app.save(UnknownUserLogin.record("acme", "mallory", clock.now()))
        views.audit.ensure()
        views.directory.ensure()
        store = tmp_path / "store"
        files = {p.name: mode(p) for p in store.iterdir() if not p.name.endswith(".lock")}
    finally:
        views.close()
        app.close()

    assert {"aero.db", "aero.db-wal", "aero.db-shm"} <= set(files)
    assert {
        name: files[name] for name in ("aero.db", "aero.db-wal", "aero.db-shm")
    } == dict.fromkeys(("aero.db", "aero.db-wal", "aero.db-shm"), 0o600)
    assert mode(tmp_path / "store") == 0o700
    assert mode(tmp_path / "data") == 0o700


def test_files_an_earlier_start_left_readable_are_narrowed(
    tmp_path: Path, clock: FixedClock
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    for name in ("aero.db", "aero.db-wal", "aero.db-shm"):
        (store / name).touch(mode=0o644)
    (tmp_path / "data").mkdir(mode=0o755)

    app = build_application(sqlite_settings(tmp_path), clock=clock)
    try:
        modes = [mode(store / name) for name in ("aero.db", "aero.db-wal", "aero.db-shm")]
    finally:
        app.close()

    assert modes == [0o600] * 3
    assert mode(tmp_path / "data") == 0o700


def test_a_key_file_others_can_read_or_write_is_named_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = sqlite_settings(tmp_path)
    secret_box(settings)
    operator_token(settings.model_copy(update={"operator_token": None}))
    capsys.readouterr()
    assert "warning" not in capsys.readouterr().err

    (tmp_path / "data" / "secret.key").chmod(0o644)
    (tmp_path / "data" / "operator.token").chmod(0o620)
    secret_box(settings)
    operator_token(settings.model_copy(update={"operator_token": None}))
    configured = tmp_path / "configured.key"
    configured.write_text((tmp_path / "data" / "secret.key").read_text())
    configured.chmod(0o604)
    secret_box(settings.model_copy(update={"secret_key_file": configured}))

    err = capsys.readouterr().err
    assert f"secret key at {tmp_path / 'data' / 'secret.key'} has mode 0644" in err
    assert f"operator token at {tmp_path / 'data' / 'operator.token'} has mode 0620" in err
    assert f"AERO_SECRET_KEY_FILE at {configured} has mode 0604" in err
