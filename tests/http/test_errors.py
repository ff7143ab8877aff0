"""Error shapes: one body for every error, no stack trace, no echo of what was sent."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from tests.conftest import DatabaseUnderTest
from tests.http.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    OPERATOR,
    Api,
    FakeReadModels,
    TestClient,
    bearer,
    error_of,
)


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    return sqlite_database


def test_unknown_routes_and_methods(api: Api) -> None:
    missing = api.client.get("/v2/nothing")
    method = api.client.delete("/v1/environments")

    assert (missing.status_code, error_of(missing)) == (404, "not_found")
    assert (method.status_code, error_of(method)) == (405, "method_not_allowed")


def test_validation_errors_keep_fastapis_detail_without_echoing_input(acme: Api) -> None:
    secret = "my secret passphrase 1"
    response = acme.client.post(
        acme.url("/login"), json={"username": "bob", "password": secret, "otp": "1"}
    )
    malformed = acme.client.post(
        acme.url("/login"), content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"][0]["loc"] == ["body", "otp"]
    assert secret not in response.text
    assert malformed.status_code == 422


def test_text_that_is_not_unicode_is_invalid_input(acme: Api) -> None:
    body = b'{"username": "bob", "password": "abc\\ud800defghij"}'

    response = acme.client.post(
        acme.url("/login"), content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422


def test_oversized_bodies_are_refused(acme: Api) -> None:
    body = b'{"username": "bob", "password": "%s"}' % (b"x" * 100_000)

    declared = acme.client.post(
        acme.url("/login"), content=body, headers={"Content-Type": "application/json"}
    )
    chunked = acme.client.post(
        acme.url("/login"),
        content=iter([body[:50_000], body[50_000:]]),
        headers={"Content-Type": "application/json"},
    )

    assert (declared.status_code, error_of(declared)) == (413, "payload_too_large")
    assert (chunked.status_code, error_of(chunked)) == (413, "payload_too_large")


def test_odd_paths_are_not_found_not_failures(acme: Api) -> None:
    for path in ("/v1/environments/%00/login", "/v1/environments/acme/users/%0a%00"):
        response = acme.client.request(
            "POST" if path.endswith("login") else "GET",
            path,
            json={"username": "x", "password": "y"},
            headers=acme.admin,
        )
        assert response.status_code == 404, path


def test_an_unexpected_failure_is_a_bare_500(
    app_factory: Callable[..., TestClient],
    clock,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(FakeReadModels):
        def audit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("database on fire at /srv/secret/path")

    client = app_factory(read_models_factory=Broken)
    quiet = TestClient(client.app, raise_server_exceptions=False)
    api = Api(quiet, clock)
    quiet.post(
        "/v1/environments",
        json={
            "slug": "acme",
            "display_name": "Acme",
            "issuer": "Aero",
            "admin": {"username": ADMIN, "password": ADMIN_PASSWORD},
        },
        headers=OPERATOR,
    )

    with caplog.at_level(logging.ERROR, logger="aero_auth"):
        response = quiet.get(
            api.url("/audit"), headers=bearer(api.access_token(ADMIN, ADMIN_PASSWORD))
        )

    assert (response.status_code, error_of(response)) == (500, "internal_error")
    assert "fire" not in response.text and "Traceback" not in response.text
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)


def test_unknown_query_parameters_are_refused(acme: Api) -> None:
    mistyped = acme.client.get(
        acme.url("/policy"), params={"at": "2026-11-28T10:00:10Z", "sort": "x"}, headers=acme.admin
    )
    known = acme.client.get(
        acme.url("/policy"), params={"at": "2026-11-28T10:00:10Z"}, headers=acme.admin
    )

    assert mistyped.status_code == 422
    assert mistyped.json()["error"] == "invalid_request"
    assert mistyped.json()["detail"][0]["loc"] == ["query", "sort"]
    assert known.status_code == 200
