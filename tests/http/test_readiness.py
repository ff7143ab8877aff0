"""/readyz judges what serving needs now: a store that accepts writes, views kept current."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from httpx import Response

from application.clock import FixedClock
from interfaces.composition import build_read_models
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest
from tests.http.conftest import Api, TestClient


def readyz_until(client: TestClient, done: Callable[[Response], bool]) -> Response:
    """/readyz until ``done`` (results are kept a moment), with a generous deadline."""
    deadline = time.monotonic() + 15
    while True:
        response = client.get("/readyz")
        if done(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@contextmanager
def writes_refused(database: DatabaseUnderTest, settings: Settings) -> Iterator[None]:
    """SQLite: another connection holds the write lock. PostgreSQL: the database is made
    read-only for new sessions."""
    if database.url.startswith("sqlite"):
        connection = sqlite3.connect(settings.database_url[len("sqlite:///") :])
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
        return
    dbname = database.url.rsplit("/", 1)[1]
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')


def test_not_ready_while_the_store_does_not_accept_a_write(
    acme: Api, database: DatabaseUnderTest, settings: Settings
) -> None:
    assert acme.client.get("/readyz").status_code == 200

    with writes_refused(database, settings):
        refused = readyz_until(acme.client, lambda r: r.status_code == 503)
    again = readyz_until(acme.client, lambda r: r.status_code == 200)

    assert refused.status_code == 503
    [problem] = refused.json()["problems"]
    assert problem.startswith("event store does not accept writes")
    assert again.status_code == 200


def test_not_ready_while_nobody_projects_a_view_or_it_lags_past_the_bound(
    app_factory: Callable[..., TestClient], settings: Settings, clock: FixedClock
) -> None:
    reading_only = settings.model_copy(
        update={
            "project_in_process": False,
            "ready_max_lag_seconds": 60,
            "read_model_wait_seconds": 0.5,
        }
    )
    client = app_factory(
        reading_only, read_models_factory=lambda app: build_read_models(reading_only, app)
    )
    api = Api(client, clock)
    api.create_environment()  # waits for the views in vain: nobody projects them

    unprojected = readyz_until(client, lambda r: len(r.json().get("problems", [])) >= 2)
    clock.advance(seconds=61)
    lagging = readyz_until(client, lambda r: "lags" in r.text)

    assert unprojected.status_code == 503
    problems = unprojected.json()["problems"]
    assert any(p.startswith("audit view: no process holds its projector lease") for p in problems)
    assert any(p.startswith("directory view: no process holds") for p in problems)
    assert lagging.status_code == 503
    assert any(
        p.startswith("audit view lags 61 s behind the store") for p in lagging.json()["problems"]
    )
