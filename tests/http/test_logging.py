"""Logs never hold passwords, codes, secrets or tokens; client values cannot forge lines
(SECURITY.md 17)."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import DatabaseUnderTest
from tests.http.conftest import ADMIN, ADMIN_PASSWORD, Api, bearer


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    return sqlite_database


def test_logs_carry_no_secrets_and_escape_client_values(
    acme: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        acme.set_policy(True, ["finance"])
        acme.create_user("bob", groups=["finance"])
        enrolment = acme.enrol("bob")
        token = acme.access_token(ADMIN, ADMIN_PASSWORD)
        acme.client.get(
            acme.url("/users/bob%0aINFO forged line"),
            headers={**bearer(token), "User-Agent": "evil\x0bagent"},
        )
        acme.login("mallory\nINFO aero_auth.http forged", "guess password")

    lines = [record.getMessage() for record in caplog.records]
    text = "\n".join(lines)
    assert any("/v1/environments/{env}/users/{username}" in line for line in lines)
    assert all("\n" not in line for line in lines)
    assert "bob\\x0aINFO forged line" in text
    for secret in (
        ADMIN_PASSWORD,
        "a sound passphrase 4711",
        enrolment.secret,
        enrolment.access_token,
        token,
        *enrolment.recovery_codes,
    ):
        assert secret not in text
