"""The store failing under a request: 503 store_unavailable with Retry-After, one log line,
and the next request served; writers that keep colliding: 409, or 401 at the password step.

The test client raises whatever the app lets escape to the server, so every test
here also shows that the failure was answered inside the app (no second
traceback from the server, no dropped connection).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError, RecordConflictError

from application.clock import FixedClock
from application.service import SecurityPolicy
from interfaces.composition import build_read_models, http_app
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest, _create_pg_database, _drop_pg_database, make_settings
from tests.http.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    PASSWORD,
    Api,
    FakeReadModels,
    TestClient,
    error_of,
)


def fail_next_inserts(
    monkeypatch: pytest.MonkeyPatch, api: Api, error: Exception, times: int = 1
) -> None:
    recorder = api.application.recorder
    insert = recorder.insert_events
    left = [times]

    def failing(*args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise error
        return insert(*args, **kwargs)

    monkeypatch.setattr(recorder, "insert_events", failing)


def store_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("aero_auth")]


def test_a_full_disk_answers_503_with_retry_after_in_one_log_line_and_the_next_request_succeeds(
    acme: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    acme.create_user("bob")
    fail_next_inserts(monkeypatch, acme, OperationalError("database or disk is full"))

    with caplog.at_level(logging.WARNING, logger="aero_auth"):
        response = acme.login("bob", "not bob's password")

    assert (response.status_code, error_of(response)) == (503, "store_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert "disk" not in response.text
    [line] = store_lines(caplog)
    assert "store unavailable (disk_full)" in line.getMessage()
    assert line.exc_info is None
    assert acme.login("bob").status_code == 200


def test_a_locked_read_model_answers_503_and_the_next_request_succeeds(
    app_factory: Callable[..., TestClient], clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [1]

    class Locked(FakeReadModels):
        def list_users(self, *args: Any, **kwargs: Any) -> Any:
            if failures:
                failures.pop()
                raise sqlite3.OperationalError("database is locked")
            return super().list_users(*args, **kwargs)

    api = Api(app_factory(read_models_factory=Locked), clock)
    assert api.create_environment().status_code == 201

    with caplog.at_level(logging.WARNING, logger="aero_auth"):
        response = api.client.get(api.url("/users"), headers=api.admin)

    assert (response.status_code, error_of(response)) == (503, "store_unavailable")
    assert response.headers["Retry-After"]
    [line] = store_lines(caplog)
    assert "store unavailable (locked)" in line.getMessage() and line.exc_info is None
    assert api.client.get(api.url("/users"), headers=api.admin).status_code == 200


def test_a_pool_without_a_free_connection_answers_503(
    acme: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from eventsourcing.persistence import ConnectionUnavailableError

    acme.create_user("bob")
    fail_next_inserts(monkeypatch, acme, ConnectionUnavailableError("timed out after 5 s"))

    with caplog.at_level(logging.WARNING, logger="aero_auth"):
        response = acme.client.put(
            acme.url("/users/bob/groups"), json={"groups": ["sales"]}, headers=acme.admin
        )

    assert (response.status_code, error_of(response)) == (503, "store_unavailable")
    assert "store unavailable (pool_timeout)" in store_lines(caplog)[0].getMessage()
    retried = acme.client.put(
        acme.url("/users/bob/groups"), json={"groups": ["sales"]}, headers=acme.admin
    )
    assert retried.status_code == 200 and retried.json()["groups"] == ["sales"]


def test_writers_that_keep_colliding_answer_409_with_retry_after_and_401_at_the_password_step(
    acme: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme.create_user("bob")
    admin = acme.admin
    monkeypatch.setattr(acme.application, "security", SecurityPolicy(conflict_retries=2))
    fail_next_inserts(monkeypatch, acme, RecordConflictError("another writer"), times=1000)

    changed = acme.client.put(acme.url("/users/bob/groups"), json={"groups": ["x"]}, headers=admin)
    login = acme.login("bob")

    assert (changed.status_code, error_of(changed)) == (409, "conflict")
    assert int(changed.headers["Retry-After"]) >= 1
    assert (login.status_code, error_of(login)) == (401, "invalid_credentials")


# ----- PostgreSQL: the server ends the app's connections -----


@pytest.fixture
def postgres_settings(tmp_path: Path) -> Iterator[Settings]:
    name = _create_pg_database()
    database = DatabaseUnderTest(
        "postgres", f"postgresql://postgres@127.0.0.1:5432/{name}", pg_dbname=name
    )
    try:
        yield make_settings(database, tmp_path)
    finally:
        _drop_pg_database(name)


@pytest.mark.postgres
def test_connections_the_server_ended_are_replaced_and_no_request_fails_with_500(
    postgres_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:

    clock = FixedClock(datetime(2026, 11, 28, 10, 0, 10, tzinfo=UTC))
    app = http_app(
        postgres_settings,
        clock=clock,
        read_models_factory=partial(build_read_models, postgres_settings),
    )
    with TestClient(app, raise_server_exceptions=False) as quiet:
        check_every_kind_of_request_after_the_server_ends_connections(
            Api(quiet, clock), postgres_settings, caplog
        )


def check_every_kind_of_request_after_the_server_ends_connections(
    api: Api, postgres_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    quiet = api.client
    assert api.create_environment().status_code == 201
    assert api.create_user("bob").status_code == 201
    admin = api.admin
    dbname = postgres_settings.database_url.rsplit("/", 1)[1]

    def terminate() -> int:
        with psycopg.connect(
            host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchall()
        return len(rows)

    policy = {"require_2fa": False, "groups": ["a"]}
    requests: list[tuple[str, Callable[[], Any], int]] = [
        ("password step", lambda: api.login("bob", "not bob's password"), 401),
        ("login", lambda: api.login(ADMIN, ADMIN_PASSWORD), 200),
        ("write", lambda: quiet.put(api.url("/policy"), json=policy, headers=admin), 200),
        ("read", lambda: quiet.get(api.url("/users"), headers=admin), 200),
    ]
    with caplog.at_level(logging.WARNING):
        for what, request, expected in requests:
            assert terminate() > 0, what
            first = request()
            assert first.status_code in (expected, 503), (what, first.status_code, first.text)
            if first.status_code == 503:
                assert error_of(first) == "store_unavailable"
            second = request()
            assert second.status_code == expected, (what, second.text)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert PASSWORD not in caplog.text
