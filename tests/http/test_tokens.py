"""Access tokens: EdDSA JWTs that others verify with /.well-known/jwks.json; forged,
expired, foreign and ended ones are refused."""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Callable
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from interfaces.cli.main import app as cli
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest
from tests.http.conftest import ADMIN, ADMIN_PASSWORD, Api, TestClient, bearer, error_of


@pytest.fixture
def database(sqlite_database: DatabaseUnderTest) -> DatabaseUnderTest:
    """Token handling does not depend on the store."""
    return sqlite_database


def _segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def test_access_tokens_verify_with_the_published_key(acme: Api) -> None:
    token = acme.access_token(ADMIN, ADMIN_PASSWORD)
    [key] = acme.client.get("/.well-known/jwks.json").json()["keys"]

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience="aero-auth:access",
        options={"verify_exp": False, "verify_iat": False},
    )

    assert (header["alg"], header["typ"], header["kid"]) == ("EdDSA", "at+jwt", key["kid"])
    assert (key["kty"], key["crv"], key["use"]) == ("OKP", "Ed25519", "sig")
    assert claims["env"] == "acme" and claims["username"] == "alice"
    assert claims["roles"] == ["admin", "auditor"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["sub"] == str(acme.application.user("acme", "alice").id)


def test_forged_tokens_are_refused(acme: Api) -> None:
    token = acme.access_token(ADMIN, ADMIN_PASSWORD)
    header, claims = _segments(token)
    public = acme.client.get("/.well-known/jwks.json").json()["keys"][0]["x"]

    other_key = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=header)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]})
    without_alg = {k: v for k, v in header.items() if k != "alg"}
    confused = jwt.encode(claims, public, algorithm="HS256", headers=without_alg)
    raised = jwt.encode({**claims, "roles": ["root"]}, "k" * 32, algorithm="HS256")
    head, _, signature = token.split(".")
    tampered_payload = (
        base64.urlsafe_b64encode(json.dumps({**claims, "username": "bob"}).encode())
        .decode()
        .rstrip("=")
    )

    for forged in (
        other_key,
        unsigned,
        confused,
        raised,
        f"{head}.{tampered_payload}.{signature}",
        "x.y.z",
    ):
        response = acme.client.get(acme.url("/policy"), headers=bearer(forged))
        assert (response.status_code, error_of(response)) == (401, "invalid_token")
    assert acme.client.get(acme.url("/policy"), headers=bearer(token)).status_code == 200


def test_an_expired_access_token_is_refused(acme: Api) -> None:
    token = bearer(acme.access_token(ADMIN, ADMIN_PASSWORD))

    acme.clock.advance(seconds=3599)
    assert acme.client.get(acme.url("/me"), headers=token).status_code == 200
    acme.clock.advance(seconds=1)
    assert acme.client.get(acme.url("/me"), headers=token).status_code == 401


def test_a_token_of_one_environment_is_refused_in_another(acme: Api) -> None:
    acme.env = "globex"
    assert acme.create_environment().status_code == 201
    acme.env = "acme"

    response = acme.client.get("/v1/environments/globex/me", headers=acme.admin)

    assert (response.status_code, error_of(response)) == (401, "invalid_token")


def test_a_reset_ends_earlier_tokens_but_not_one_issued_just_after(acme: Api) -> None:
    acme.create_user("bob")
    before = bearer(acme.access_token("bob"))
    acme.clock.advance(timedelta(milliseconds=200))
    acme.client.post(
        acme.url("/users/bob/two-factor/reset"), json={"reason": "ticket 1"}, headers=acme.admin
    )
    acme.clock.advance(timedelta(milliseconds=200))
    after = bearer(acme.access_token("bob"))

    assert acme.client.get(acme.url("/me"), headers=before).status_code == 401
    assert acme.client.get(acme.url("/me"), headers=after).status_code == 200


@pytest.mark.parametrize("step_back", [timedelta(0), timedelta(milliseconds=1)])
@pytest.mark.parametrize(
    "end_sessions",
    [
        lambda acme: acme.client.post(
            acme.url("/users/bob/two-factor/reset"), json={"reason": "t 1"}, headers=acme.admin
        ),
        lambda acme: acme.client.put(
            acme.url("/users/bob/password"),
            json={"password": "another sound one"},
            headers=acme.admin,
        ),
    ],
    ids=["reset", "password change"],
)
def test_a_token_from_before_a_reset_is_refused_when_the_clock_stands_still_or_steps_back(
    acme: Api, step_back: timedelta, end_sessions: Callable[[Api], object]
) -> None:
    acme.admin  # noqa: B018 (the admin logs in first, at the same instant)
    acme.create_user("bob")
    before = bearer(acme.access_token("bob"))

    acme.clock.advance(-step_back)
    end_sessions(acme)

    response = acme.client.get(acme.url("/me"), headers=before)
    assert (response.status_code, error_of(response)) == (401, "invalid_token")


def test_date_claims_are_whole_seconds(acme: Api) -> None:
    acme.create_user("bob", groups=["finance"])
    acme.set_policy(True, ["finance"])
    acme.clock.advance(timedelta(milliseconds=250))
    second = int(acme.clock.now().timestamp())

    _, access = _segments(acme.access_token(ADMIN, ADMIN_PASSWORD))
    _, login = _segments(acme.login_token("bob", "two_factor_registration_required"))

    for claims in (access, login):
        assert all(type(claims[name]) is int for name in ("iat", "nbf", "exp"))
        assert claims["nbf"] == claims["iat"] == second
    assert access["exp"] == second + 3600
    assert login["exp"] == second + 300


def test_the_signing_key_is_created_once_with_mode_0600_and_survives_restarts(
    acme: Api, app_factory: Callable[..., TestClient], settings: Settings
) -> None:
    token = bearer(acme.access_token(ADMIN, ADMIN_PASSWORD))
    path = settings.data_dir / "token-signing.pem"

    restarted = Api(app_factory(), acme.clock)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert restarted.client.get(restarted.url("/me"), headers=token).status_code == 200


def test_a_configured_signing_key_file_is_used(
    acme: Api, app_factory: Callable[..., TestClient], settings: Settings
) -> None:
    key_file = settings.data_dir / "configured.pem"
    key_file.write_bytes((settings.data_dir / "token-signing.pem").read_bytes())
    (settings.data_dir / "token-signing.pem").unlink()
    token = bearer(acme.access_token(ADMIN, ADMIN_PASSWORD))

    configured = Api(
        app_factory(settings.model_copy(update={"token_signing_key_file": key_file})), acme.clock
    )

    assert configured.client.get(configured.url("/me"), headers=token).status_code == 200
    assert not (settings.data_dir / "token-signing.pem").exists()


def _rotate(settings: Settings, *options: str) -> tuple[int, str]:
    env = {
        "AERO_DATABASE_URL": settings.database_url,
        "AERO_DATA_DIR": str(settings.data_dir),
        "AERO_TOKEN_SIGNING_KEY_FILE": str(settings.token_signing_key_file or ""),
    }
    env = {k: v for k, v in env.items() if v}
    result = CliRunner().invoke(cli, ["tokens", "rotate-signing-key", *options], env=env)
    return result.exit_code, result.output


def test_a_rotation_keeps_tokens_of_the_previous_key_valid_until_they_expire(
    acme: Api, app_factory: Callable[..., TestClient], settings: Settings
) -> None:
    old = bearer(acme.access_token(ADMIN, ADMIN_PASSWORD))
    [old_key] = acme.client.get("/.well-known/jwks.json").json()["keys"]

    code, output = _rotate(settings)
    restarted = Api(app_factory(), acme.clock)
    response = restarted.client.get("/.well-known/jwks.json")
    new_key, previous = response.json()["keys"]
    new = restarted.access_token(ADMIN, ADMIN_PASSWORD)

    assert code == 0, output
    assert response.headers["cache-control"] == "public, max-age=300"
    assert previous == old_key and new_key["kid"] != old_key["kid"]
    assert jwt.get_unverified_header(new)["kid"] == new_key["kid"]
    assert restarted.client.get(restarted.url("/me"), headers=old).status_code == 200
    assert restarted.client.get(restarted.url("/me"), headers=bearer(new)).status_code == 200
    previous_file = settings.data_dir / "token-signing.previous.pem"
    assert stat.S_IMODE(previous_file.stat().st_mode) == 0o600
    assert b"PRIVATE" not in previous_file.read_bytes()
    acme.clock.advance(seconds=3600)
    assert restarted.client.get(restarted.url("/me"), headers=old).status_code == 401


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def web_login(client: TestClient, username: str, password: str) -> str:
    """Log in through the web UI's form; the CSRF token of the page, for the next form."""
    page = client.get("/ui/acme/login")
    match = CSRF.search(page.text)
    assert match is not None, page.text
    response = client.post(
        "/ui/acme/login",
        data={"csrf_token": match.group(1), "username": username, "password": password},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return match.group(1)


def test_a_rotation_keeps_web_ui_sessions_and_their_forms(
    acme: Api, app_factory: Callable[..., TestClient], settings: Settings
) -> None:
    csrf = web_login(acme.client, ADMIN, ADMIN_PASSWORD)
    assert acme.client.get("/ui/acme/account", follow_redirects=False).status_code == 200

    code, output = _rotate(settings)
    restarted = app_factory()
    for cookie in acme.client.cookies.jar:
        restarted.cookies.jar.set_cookie(cookie)

    assert code == 0, output
    cookie_key = settings.data_dir / "token-signing.previous-cookies.key"
    assert stat.S_IMODE(cookie_key.stat().st_mode) == 0o600
    # The browser's session cookie, sealed before the rotation, still opens...
    account = restarted.get("/ui/acme/account", follow_redirects=False)
    assert account.status_code == 200, account.headers.get("location")
    # ...a form rendered before it is still accepted (log out: 303, not 403)...
    logout = restarted.post("/ui/acme/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert logout.status_code == 303, logout.text
    # ...and a new login is sealed under the new key alone.
    web_login(restarted, ADMIN, ADMIN_PASSWORD)
    assert restarted.get("/ui/acme/account", follow_redirects=False).status_code == 200


def test_a_second_rotation_within_a_token_lifetime_needs_force_and_ends_the_oldest_tokens(
    acme: Api, app_factory: Callable[..., TestClient], settings: Settings
) -> None:
    oldest = bearer(acme.access_token(ADMIN, ADMIN_PASSWORD))
    assert _rotate(settings)[0] == 0

    refused, output = _rotate(settings)
    assert refused == 1 and "tokens signed by the key before it may be valid" in output
    forced, output = _rotate(settings, "--force")
    restarted = Api(app_factory(), acme.clock)

    assert forced == 0, output
    assert len(restarted.client.get("/.well-known/jwks.json").json()["keys"]) == 2
    assert restarted.client.get(restarted.url("/me"), headers=oldest).status_code == 401


def test_a_configured_signing_key_is_rotated_in_place(
    acme: Api, app_factory: Callable[..., TestClient], settings: Settings
) -> None:
    key_file = settings.data_dir / "keys" / "signing.pem"
    key_file.parent.mkdir()
    key_file.write_bytes((settings.data_dir / "token-signing.pem").read_bytes())
    configured = settings.model_copy(update={"token_signing_key_file": key_file})
    token = bearer(acme.access_token(ADMIN, ADMIN_PASSWORD))

    code, output = _rotate(configured)
    restarted = Api(app_factory(configured), acme.clock)

    assert code == 0, output
    assert (key_file.parent / "signing.previous.pem").exists()
    assert restarted.client.get(restarted.url("/me"), headers=token).status_code == 200
