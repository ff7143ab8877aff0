"""Fixtures of the investigation tests: the scripted history, recorded once per store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from application.clock import FixedClock
from interfaces.composition import build_application
from tests.conftest import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    DatabaseUnderTest,
    _create_pg_database,
    _drop_pg_database,
    make_settings,
)
from tests.investigate.script import Scripted, at, record_history


@pytest.fixture
def clock() -> FixedClock:
    """Overrides the shared clock: this package's histories happen on 2026-03-03."""
    return FixedClock(at("08:00:00"))


@pytest.fixture(
    scope="package", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def scripted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scripted]:
    """The scripted history, recorded once per store: History only reads it."""
    tmp_path = tmp_path_factory.mktemp(f"investigate-{request.param}")
    name = None
    if request.param == "sqlite":
        path = tmp_path / "store" / "aero.db"
        database = DatabaseUnderTest("sqlite", f"sqlite:///{path}", sqlite_path=path)
    else:
        name = _create_pg_database()
        database = DatabaseUnderTest(
            "postgres", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}", pg_dbname=name
        )
    settings = make_settings(database, tmp_path)
    clock = FixedClock(at("08:00:00"))
    app = build_application(settings, clock=clock)
    try:
        secret = record_history(app, clock)
        yield Scripted(app, clock, settings, database, secret)
    finally:
        app.close()
        if name is not None:
            _drop_pg_database(name)
