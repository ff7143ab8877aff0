"""Each way a callback can fail answers as API.md says, leaves nothing half-done, and is
recorded with its reason: states replayed, foreign or expired, a wrong nonce, another
tenant, an unknown key, an expired token, a provider that does not answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.http.conftest import Api, TestClient, bearer, error_of
from tests.oidc.conftest import Federation
from tests.oidc.harness import OTHER_TENANT, REDIRECT_URI


def failures(federation: Federation) -> list[dict[str, object]]:
    return [e["details"] for e in federation.audit(type="login_federated_failed")]


def users(federation: Federation) -> list[str]:
    response = federation.api.client.get(federation.api.url("/users"), headers=federation.api.admin)
    return sorted(u["username"] for u in response.json()["users"])


def assert_refused(response: object, reason: str, federation: Federation) -> None:
    assert (response.status_code, error_of(response)) == (401, "invalid_oidc_response")  # type: ignore[attr-defined]
    assert failures(federation)[-1]["reason"] == reason
    assert users(federation) == ["alice"]


def test_a_state_is_used_up_by_its_first_callback(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    started = connected.start().json()
    answer = connected.provider.authorize(started["authorization_url"], subject)
    assert connected.callback(answer).status_code == 200
    assert connected.provider.requests("/token") == 1

    replayed = connected.callback(answer)

    assert (replayed.status_code, error_of(replayed)) == (401, "invalid_oidc_response")
    assert failures(connected)[-1] == {"reason": "state_used", "subject": None}
    # Refused without contacting the provider: its code was not offered again.
    assert connected.provider.requests("/token") == 1


def test_a_failed_callback_uses_up_its_state_too(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    started = connected.start().json()
    answer = connected.provider.authorize(started["authorization_url"], subject)

    refused = connected.callback({**answer, "iss": "https://evil.example/v2.0"})
    retried = connected.callback(answer)

    assert refused.status_code == 401 and retried.status_code == 401
    assert [f["reason"] for f in failures(connected)] == ["issuer_mismatch", "state_used"]
    assert users(connected) == ["alice"]
    assert connected.provider.requests("/token") == 0


def test_an_unknown_or_foreign_state_is_refused(connected: Federation) -> None:
    api = connected.api
    other = type(api)(api.client, api.clock, env="other")
    assert other.create_environment().status_code == 201
    other_federation = Federation(other, connected.provider)
    assert other_federation.connect().status_code == 200
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    foreign = other_federation.start().json()
    answer = connected.provider.authorize(foreign["authorization_url"], subject)

    unknown = connected.callback({"state": "made-up-state", "code": answer["code"]})
    crossed = connected.callback(answer)

    assert unknown.status_code == 401 and crossed.status_code == 401
    assert [f["reason"] for f in failures(connected)] == ["unknown_state", "unknown_state"]
    # The other environment's login was not touched: it still works there.
    assert other_federation.callback(answer).status_code == 200


def test_a_state_expires_after_ten_minutes(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    started = connected.start().json()
    answer = connected.provider.authorize(started["authorization_url"], subject)
    connected.api.clock.advance(minutes=10)

    assert_refused(connected.callback(answer), "state_expired", connected)


def test_the_provider_refusing_the_login_is_a_401(connected: Federation) -> None:
    started = connected.start().json()

    response = connected.callback({"state": started["state"], "error": "access_denied"})

    assert_refused(response, "provider_error:access_denied", connected)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_an_id_token_with_another_nonce_is_refused(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")

    response = connected.login(subject, rewrite=lambda url: with_query(url, nonce="injected"))

    assert_refused(response, "wrong_nonce", connected)


def test_a_code_for_another_pkce_challenge_is_refused_by_the_provider(
    connected: Federation,
) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    other = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    response = connected.login(subject, rewrite=lambda url: with_query(url, code_challenge=other))

    assert_refused(response, "code_refused", connected)


def test_an_id_token_of_another_tenant_is_refused(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol", tid=OTHER_TENANT)

    response = connected.login(subject)

    assert_refused(response, "wrong_tenant", connected)
    assert failures(connected)[-1]["subject"] is None


def test_a_key_the_provider_does_not_list_is_refused_after_one_more_fetch(
    connected: Federation,
) -> None:
    provider = connected.provider
    subject = provider.account("carol-sub", preferred_username="carol")
    current = provider.control("stats")["kids"][0]
    provider.control("hide-keys", {"kids": [current]})
    fetches = provider.jwks_fetches()

    response = connected.login(subject)

    assert_refused(response, "unknown_key", connected)
    assert provider.jwks_fetches() == fetches + 1


def test_a_key_rotated_in_at_the_provider_is_fetched_once_and_used(
    connected: Federation,
) -> None:
    provider = connected.provider
    carol = provider.account("carol-sub", preferred_username="carol")
    dave = provider.account("dave-sub", preferred_username="dave")
    assert connected.login(carol).status_code == 200
    fetches = provider.jwks_fetches()
    assert connected.login(carol).status_code == 200
    assert provider.jwks_fetches() == fetches  # cached

    # The provider rolls its keys over while aero-auth holds the old set: the next
    # ID token is signed with a key it has not seen.
    provider.control("rotate")
    rotated = connected.login(dave)
    after = connected.login(carol)

    assert rotated.status_code == 200, rotated.text
    assert after.status_code == 200
    assert provider.jwks_fetches() == fetches + 1


def test_a_login_under_way_and_a_session_survive_the_provider_rotating_its_keys(
    connected: Federation,
) -> None:
    provider = connected.provider
    carol = provider.account("carol-sub", preferred_username="carol")
    before = connected.login(carol)
    assert before.status_code == 200, before.text
    fetches = provider.jwks_fetches()

    # Carol starts logging in again; the provider rolls its keys over while she is at
    # its login screen, so her ID token comes back signed with a key aero-auth has not
    # seen at the start of her login.
    started = connected.start().json()
    provider.control("rotate")
    answer = provider.authorize(started["authorization_url"], carol)
    finished = connected.callback(answer)

    assert finished.status_code == 200, finished.text
    assert provider.jwks_fetches() == fetches + 1
    # The session from before the rotation is aero-auth's own: it does not depend
    # on the provider's keys.
    api = connected.api
    me = api.client.get(api.url("/me"), headers=bearer(before.json()["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "carol"


def test_an_expired_id_token_is_refused_beyond_two_minutes_of_skew(
    connected: Federation,
) -> None:
    provider = connected.provider
    subject = provider.account("carol-sub", preferred_username="carol")
    provider.control("id-token-ttl", {"seconds": 30})
    within = connected.start().json()
    within_answer = provider.authorize(within["authorization_url"], subject)
    beyond = connected.start().json()
    beyond_answer = provider.authorize(beyond["authorization_url"], subject)

    connected.api.clock.advance(seconds=30 + 110)
    accepted = connected.callback(within_answer)
    connected.api.clock.advance(seconds=20)
    refused = connected.callback(beyond_answer)

    assert accepted.status_code == 200, accepted.text
    assert (refused.status_code, error_of(refused)) == (401, "invalid_oidc_response")
    assert failures(connected)[-1]["reason"] == "token_expired"


def test_an_id_token_issued_in_the_future_is_refused(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    started = connected.start().json()
    answer = connected.provider.authorize(started["authorization_url"], subject)
    connected.api.clock.advance(minutes=-3)

    assert_refused(connected.callback(answer), "issued_in_future", connected)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/tenant/v2.0"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_a_provider_that_does_not_answer_the_code_exchange_is_a_502(
    connected: Federation,
) -> None:
    provider = connected.provider
    subject = provider.account("carol-sub", preferred_username="carol")
    started = connected.start().json()
    answer = provider.authorize(started["authorization_url"], subject)
    provider.control("hang", {"paths": ["/token"]})

    response = connected.callback(answer)
    provider.control("hang", {"paths": []})
    retried = connected.callback(answer)

    assert (response.status_code, error_of(response)) == (502, "identity_provider_unavailable")
    assert retried.status_code == 401
    assert [f["reason"] for f in failures(connected)] == ["provider_unavailable", "state_used"]
    assert users(connected) == ["alice"]
    # The retry did not offer the code to the provider a second time.
    assert provider.requests("/token") == 1


def test_connecting_needs_a_discovery_document_of_that_very_issuer(
    federation: Federation, silent_server: str
) -> None:
    issuer = federation.provider.issuer
    base = issuer.rsplit("/", 2)[0]
    cases = {
        "https://": 422,
        "http://aero.example.com/tenant/v2.0": 422,  # http beyond loopback: no request
        f"{base}/{OTHER_TENANT}/v2.0": 422,  # no such document: 404
        f"{issuer}/": 422,  # the document names another issuer
        silent_server: 502,
        "http://127.0.0.1:9/tenant/v2.0": 502,  # refused
    }
    for candidate, status in cases.items():
        response = federation.connect(issuer=candidate)
        assert response.status_code == status, (candidate, response.text)
        expected = "identity_provider_unavailable" if status == 502 else None
        if expected is not None:
            assert error_of(response) == expected
        elif candidate.startswith(base):
            assert error_of(response) == "invalid_identity_provider"
    assert (
        federation.api.client.get(
            federation.api.url("/identity-provider"), headers=federation.api.admin
        ).status_code
        == 404
    )


def test_login_needs_a_connected_provider_and_a_registered_redirect_uri(
    federation: Federation,
) -> None:
    missing = federation.start()
    assert (missing.status_code, error_of(missing)) == (404, "identity_provider_not_found")
    assert federation.connect().status_code == 200

    foreign = federation.start("https://attacker.example/callback")

    assert (foreign.status_code, error_of(foreign)) == (422, "invalid_redirect_uri")
    url = federation.start(REDIRECT_URI).json()["authorization_url"]
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["response_type"] == "code"
    assert query["scope"] == "openid profile email"
    assert query["code_challenge_method"] == "S256"
    assert {"client_id", "redirect_uri", "state", "nonce", "code_challenge"} <= set(query)


def test_a_slow_callback_clock_skew_within_two_minutes_is_accepted(
    connected: Federation,
) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    started = connected.start().json()
    answer = connected.provider.authorize(started["authorization_url"], subject)
    connected.api.clock.advance(timedelta(seconds=-110))

    assert connected.callback(answer).status_code == 200


def test_a_login_started_on_one_worker_ends_on_another_exactly_once(
    connected: Federation, app_factory: Callable[..., TestClient]
) -> None:
    """States live in the event store, not in one process: every worker sees them."""
    api = connected.api
    second = Federation(Api(app_factory(), api.clock), connected.provider)
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    started = connected.start().json()
    answer = connected.provider.authorize(started["authorization_url"], subject)

    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda f: f.callback(answer), [second, connected]))

    assert sorted(r.status_code for r in both) == [200, 401]
    loser = next(r for r in both if r.status_code == 401)
    assert error_of(loser) == "invalid_oidc_response"
    assert failures(connected) == [{"reason": "state_used", "subject": None}]
    # The loser was refused without contacting the provider: the code was redeemed once.
    assert connected.provider.requests("/token") == 1
    # A login is no admin write: the users list shows carol once this process's
    # directory view has the other worker's events.
    deadline = time.monotonic() + 30
    while users(connected) != ["alice", "carol"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert users(connected) == ["alice", "carol"]
