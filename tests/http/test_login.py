"""Login: the password step, registration with a QR code, codes, recovery codes,
replays and lockouts (SECURITY.md 3-6, 9-13)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
import zxingcpp
from PIL import Image

from interfaces.composition import build_read_models
from interfaces.settings import Settings
from tests.http.conftest import ADMIN, Api, TestClient, bearer, error_of


@pytest.fixture
def finance(acme: Api) -> Api:
    """2FA required for finance; bob is in finance, carol is not."""
    acme.set_policy(True, ["finance"])
    acme.create_user("bob", groups=["finance"])
    acme.create_user("carol", groups=["sales"])
    return acme


def test_a_user_without_2fa_logs_in_with_the_password_alone(finance: Api) -> None:
    response = finance.login("carol")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "access_token", "expires_in"}
    assert (body["status"], body["expires_in"]) == ("authenticated", 3600)
    assert response.headers["Cache-Control"] == "no-store"


def test_unknown_user_wrong_password_and_throttling_look_the_same(finance: Api) -> None:
    unknown = finance.login("mallory", "whatever it is")
    wrong = finance.login("carol", "not her password")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert error_of(unknown) == "invalid_credentials"
    for _ in range(9):
        finance.login("carol", "not her password")
    throttled = finance.login("carol")
    assert (throttled.status_code, throttled.json()) == (401, wrong.json())


def test_an_unknown_environment_is_not_found(finance: Api) -> None:
    finance.env = "globex"

    response = finance.login("carol")

    assert (response.status_code, error_of(response)) == (404, "environment_not_found")


def test_first_login_registers_an_authenticator_from_the_qr_code(finance: Api) -> None:
    login = finance.login("bob")
    assert login.json()["status"] == "two_factor_registration_required"
    assert 0 < login.json()["expires_in"] <= 300
    token = bearer(login.json()["login_token"])

    registration = finance.client.post(finance.url("/login/two-factor/registration"), headers=token)
    again = finance.client.post(finance.url("/login/two-factor/registration"), headers=token)
    png = finance.client.get(finance.url("/login/two-factor/registration/qr.png"), headers=token)

    body = registration.json()
    uri = urlparse(body["otpauth_uri"])
    query = parse_qs(uri.query)
    assert again.json()["secret"] == body["secret"]
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", "/BizzStream%20Aero:bob")
    assert query["secret"] == [body["secret"]] and "=" not in body["secret"]
    assert query["issuer"] == ["BizzStream Aero"]
    assert len(body["secret"]) == 32  # 160 bits in Base32 (RFC 4226 R6)
    assert body["qr_code_svg"].startswith("<svg")
    assert png.headers["content-type"] == "image/png"
    [symbol] = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png.content)), formats=zxingcpp.BarcodeFormat.QRCode
    )
    assert symbol.text == body["otpauth_uri"]

    code = pyotp.parse_uri(body["otpauth_uri"]).at(finance.clock.now())
    confirmed = finance.client.post(
        finance.url("/login/two-factor/registration/confirm"), json={"code": code}, headers=token
    )

    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "authenticated"
    assert len(confirmed.json()["recovery_codes"]) == 10
    me = finance.client.get(finance.url("/me"), headers=bearer(confirmed.json()["access_token"]))
    assert me.json()["two_factor"] == {
        "required": True,
        "registered": True,
        "locked_until": None,
        "disabled": False,
    }


def test_a_wrong_first_code_does_not_register(finance: Api) -> None:
    token = bearer(finance.login_token("bob", "two_factor_registration_required"))
    secret = finance.client.post(
        finance.url("/login/two-factor/registration"), headers=token
    ).json()["secret"]
    wrong = str((int(finance.code(secret)) + 1) % 1_000_000).zfill(6)

    response = finance.client.post(
        finance.url("/login/two-factor/registration/confirm"), json={"code": wrong}, headers=token
    )
    unstarted = bearer(finance.login_token("bob", "two_factor_registration_required"))
    early = finance.client.post(
        finance.url("/login/two-factor/registration/confirm"),
        json={"code": finance.code(secret)},
        headers=unstarted,
    )

    assert (response.status_code, error_of(response)) == (401, "invalid_code")
    assert (early.status_code, error_of(early)) == (401, "invalid_token")


def test_a_registered_user_logs_in_with_a_fresh_code_once(finance: Api) -> None:
    enrolment = finance.enrol("bob")
    finance.next_step()
    token = finance.login_token("bob", "two_factor_required")
    code = finance.code(enrolment.secret)

    accepted = finance.submit_code(token, code)
    used_token = finance.submit_code(token, code)
    replayed = finance.submit_code(finance.login_token("bob", "two_factor_required"), code)

    assert accepted.status_code == 200
    assert set(accepted.json()) == {"status", "access_token", "expires_in"}
    assert (used_token.status_code, error_of(used_token)) == (401, "invalid_token")
    assert (replayed.status_code, error_of(replayed)) == (401, "invalid_code")


def test_codes_must_be_six_ascii_digits_and_bodies_must_be_a_code_string(finance: Api) -> None:
    enrolment = finance.enrol("bob")
    finance.next_step()
    token = finance.login_token("bob", "two_factor_required")
    code = finance.code(enrolment.secret)
    fullwidth = "".join(chr(ord(d) + 0xFEE0) for d in code)

    for malformed in (fullwidth, f" {code}", code[:5], code + "0", ""):
        response = finance.submit_code(token, malformed)
        assert (response.status_code, error_of(response)) == (401, "invalid_code"), malformed
    for body in ({"code": int(code)}, {"code": None}, {}, {"code": code, "remember": True}):
        response = finance.client.post(
            finance.url("/login/two-factor"), json=body, headers=bearer(token)
        )
        assert response.status_code == 422, body
    # Five malformed codes were five failures: the code step is locked now.
    assert finance.submit_code(token, code).status_code == 429


def test_five_failures_lock_the_code_step_and_the_password_step_stays_open(finance: Api) -> None:
    enrolment = finance.enrol("bob")
    finance.next_step()
    token = finance.login_token("bob", "two_factor_required")

    failures = [finance.submit_code(token, "000000").status_code for _ in range(5)]
    locked = finance.submit_code(token, finance.code(enrolment.secret))
    recovery = finance.client.post(
        finance.url("/login/recovery"),
        json={"recovery_code": enrolment.recovery_codes[0]},
        headers=bearer(token),
    )

    assert failures == [401] * 5
    assert (locked.status_code, error_of(locked)) == (429, "too_many_attempts")
    assert locked.headers["Retry-After"] == "300"
    assert (recovery.status_code, error_of(recovery)) == (429, "too_many_attempts")
    assert recovery.headers["Retry-After"] == "300"
    assert finance.login("bob").json()["status"] == "two_factor_required"
    view = finance.client.get(finance.url("/users/bob"), headers=finance.admin).json()
    assert view["two_factor"]["locked_until"] == "2026-11-28T10:05:40Z"

    finance.clock.advance(minutes=5)
    fresh = finance.login_token("bob", "two_factor_required")
    assert finance.submit_code(fresh, finance.code(enrolment.secret)).status_code == 200


def test_recovery_codes_work_once_in_either_case_with_or_without_dashes(finance: Api) -> None:
    enrolment = finance.enrol("bob")
    first, second = enrolment.recovery_codes[:2]

    def recover(code: str) -> int:
        token = finance.login_token("bob", "two_factor_required")
        return finance.client.post(
            finance.url("/login/recovery"), json={"recovery_code": code}, headers=bearer(token)
        ).status_code

    assert recover(first.upper()) == 200
    assert recover(first) == 401
    assert recover(second.replace("-", "")) == 200
    assert recover("not-a-recovery-code") == 401


def test_an_authenticator_is_disabled_after_too_many_failures_in_all(
    finance: Api, app_factory: Callable[..., TestClient], settings: Settings
) -> None:
    strict_settings = settings.model_copy(
        update={"code_max_failures": 50, "code_disable_after_failures": 6}
    )
    strict = app_factory(
        strict_settings,
        read_models_factory=lambda app: build_read_models(strict_settings, app),
    )
    api = Api(strict, finance.clock)
    enrolment = api.enrol("bob")
    api.next_step()
    token = api.login_token("bob", "two_factor_required")

    statuses = [api.submit_code(token, "000000").status_code for _ in range(6)]
    disabled = api.submit_code(token, api.code(enrolment.secret))

    assert statuses == [401] * 6
    assert (disabled.status_code, error_of(disabled)) == (403, "two_factor_disabled")
    shown = api.client.get(api.url("/users/bob"), headers=api.admin).json()["two_factor"]
    assert (shown["registered"], shown["disabled"]) == (True, True)
    assert {n: d for n, d in listed_disabled(api).items() if d} == {"bob": True}
    api.client.post(
        api.url("/users/bob/two-factor/reset"), json={"reason": "ticket 4711"}, headers=api.admin
    )
    shown = api.client.get(api.url("/users/bob"), headers=api.admin).json()["two_factor"]
    assert shown["disabled"] is False
    assert not any(listed_disabled(api).values())


def listed_disabled(api: Api) -> dict[str, bool]:
    """Each user's ``disabled`` as the users list shows it (the directory view), once the
    view has the login events that no admin write waited for."""
    deadline = 50
    while True:
        users = api.client.get(api.url("/users"), headers=api.admin).json()["users"]
        found = {u["username"]: u["two_factor"]["disabled"] for u in users}
        single = {
            name: api.client.get(api.url(f"/users/{name}"), headers=api.admin).json()["two_factor"][
                "disabled"
            ]
            for name in found
        }
        if found == single or deadline == 0:
            return found
        deadline -= 1
        time.sleep(0.1)


def test_login_tokens_are_for_one_step_of_one_login(finance: Api) -> None:
    enrolment = finance.enrol("bob")
    finance.next_step()
    older = finance.login_token("bob", "two_factor_required")
    newer = finance.login_token("bob", "two_factor_required")
    code = finance.code(enrolment.secret)

    superseded = finance.submit_code(older, code)
    wrong_step = finance.client.post(
        finance.url("/login/two-factor/registration"), headers=bearer(newer)
    )
    elsewhere = finance.client.get(finance.url("/me"), headers=bearer(newer))
    access_on_second_step = finance.submit_code(enrolment.access_token, code)
    finance.env = "globex"
    other_environment = finance.submit_code(newer, code)
    finance.env = "acme"
    finance.clock.advance(minutes=5)
    expired = finance.submit_code(newer, code)

    for response in (
        superseded,
        wrong_step,
        elsewhere,
        access_on_second_step,
        other_environment,
        expired,
    ):
        assert (response.status_code, error_of(response)) == (401, "invalid_token")


def test_a_registration_token_opens_nothing_else(finance: Api) -> None:
    token = finance.login_token("bob", "two_factor_registration_required")
    admin_token = finance.admin["Authorization"].removeprefix("Bearer ")

    code = {"code": "123456"}
    for method, path, headers, body in (
        ("POST", "/login/two-factor", bearer(token), code),
        ("POST", "/login/recovery", bearer(token), {"recovery_code": "0000-0000-0000-0000"}),
        ("GET", "/users/bob", bearer(token), None),
        ("GET", "/me", bearer(token), None),
        ("POST", "/login/two-factor/registration", bearer(admin_token), None),
        ("GET", "/login/two-factor/registration/qr.png", bearer(admin_token), None),
        ("POST", "/login/two-factor/registration/confirm", bearer(admin_token), code),
        ("POST", "/login/two-factor/registration", {}, None),
        ("POST", "/login/two-factor/registration/confirm", bearer("e30.e30.e30"), code),
    ):
        response = finance.client.request(method, finance.url(path), headers=headers, json=body)
        assert (response.status_code, error_of(response)) == (401, "invalid_token"), path


def test_the_admin_without_2fa_is_not_asked_for_a_code(finance: Api) -> None:
    assert finance.login(ADMIN, "correct horse battery").json()["status"] == "authenticated"


@pytest.mark.parametrize(
    ("admin_action", "path", "body"),
    [
        ("reset", "/users/bob/two-factor/reset", {"reason": "lost phone, ticket 4711"}),
        ("password", "/users/bob/password", {"password": "a new passphrase 0815"}),
    ],
)
def test_a_reset_or_a_password_change_ends_the_users_pending_login(
    finance: Api, admin_action: str, path: str, body: dict[str, str]
) -> None:
    enrolment = finance.enrol("bob")
    finance.next_step()
    token = finance.login_token("bob", "two_factor_required")

    changed = finance.client.request(
        "POST" if admin_action == "reset" else "PUT",
        finance.url(path),
        json=body,
        headers=finance.admin,
    )
    pending = finance.submit_code(token, finance.code(enrolment.secret))

    assert changed.status_code == 200
    assert (pending.status_code, error_of(pending)) == (401, "invalid_token")
