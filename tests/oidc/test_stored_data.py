"""The client secret, like a TOTP secret, is stored only encrypted: it appears nowhere
in the store's bytes, in any answer or view, or in the logs. Neither do the state, the
authorization code or the PKCE verifier of a login."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.conftest import DatabaseUnderTest
from tests.oidc.conftest import Federation
from tests.oidc.harness import CLIENT_SECRET


def test_the_client_secret_and_login_secrets_appear_nowhere(
    federation: Federation, database: DatabaseUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = federation.api
    answers = [federation.connect()]
    answers.append(federation.connect(client_secret=..., two_factor="provider"))
    subject = federation.provider.account("carol-sub", preferred_username="carol")
    started = federation.start()
    query = dict(parse_qsl(urlsplit(started.json()["authorization_url"]).query))
    service_log = caplog.text
    # The browser's own requests (the test's httpx) are its log, not the service's.
    answer = federation.provider.authorize(started.json()["authorization_url"], subject)
    caplog.clear()
    answers.append(federation.callback(answer))
    assert answers[-1].status_code == 200, answers[-1].text
    answers.append(api.client.get(api.url("/identity-provider"), headers=api.admin))
    federation.audit()
    for path in ("/audit?limit=1000", "/audit/export?format=jsonl", "/users/carol/history"):
        answers.append(api.client.get(api.url(path), headers=api.admin))
        assert answers[-1].status_code == 200, answers[-1].text
    assert answers[0].json()["client_secret_set"] is True
    assert "client_secret" not in answers[0].json()

    secrets = {
        "client secret": CLIENT_SECRET,
        "state": answer["state"],
        "code": answer["code"],
        "nonce": query["nonce"],
    }
    stored = database.raw_bytes()
    logged = service_log + caplog.text
    assert "aero_auth.http" in logged and "/token" in logged  # the service's log, and its calls
    for name, value in secrets.items():
        assert value.encode() not in stored, name
        assert value not in logged, name
    shown = "".join(response.text for response in answers[:1] + answers[3:])
    assert CLIENT_SECRET not in shown
    assert answer["code"] not in shown and query["nonce"] not in shown
