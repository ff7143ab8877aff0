"""Registering an authenticator: the secret, the otpauth URI, the confirmation, and a reset."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.credential import UserCredential
from domain.errors import InvalidChallengeError, InvalidCodeError
from tests.application.helpers import (
    BOB,
    BOB_PASSWORD,
    CAROL,
    CAROL_PASSWORD,
    ENV,
    ISSUER,
    bob_registered,
    code_at,
    code_login,
    events_since,
    position,
    register,
    types,
    with_environment,
)


def finance_requires_2fa(app: AeroAuth) -> AeroAuth:
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"])
    app.create_user(ENV, CAROL, CAROL_PASSWORD, groups=["finance"])
    app.set_policy(ENV, True, ["finance"])
    return app


def registration_login(app: AeroAuth, username: str = BOB, password: str = BOB_PASSWORD) -> str:
    step = app.start_login(ENV, username, password)
    assert step.status == "two_factor_registration_required"
    assert step.challenge_id is not None
    return step.challenge_id


def test_a_required_user_without_an_authenticator_must_register(app: AeroAuth) -> None:
    finance_requires_2fa(app)

    step = app.start_login(ENV, BOB, BOB_PASSWORD)

    assert step.status == "two_factor_registration_required"
    assert step.challenge_id is not None
    assert step.expires_at == app.clock.now() + app.security.login_ttl


def test_the_secret_is_160_random_bits_in_base32(app: AeroAuth) -> None:
    finance_requires_2fa(app)

    secret = app.start_registration(ENV, BOB, registration_login(app)).secret

    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert len(base64.b32decode(secret)) * 8 == 160


def test_asking_twice_in_one_login_returns_the_same_secret_and_records_it_once(
    app: AeroAuth,
) -> None:
    finance_requires_2fa(app)
    challenge = registration_login(app)
    first = app.start_registration(ENV, BOB, challenge)
    before = position(app)

    second = app.start_registration(ENV, BOB, challenge)

    assert second == first
    assert events_since(app, before) == []


def test_each_registration_gets_its_own_secret(app: AeroAuth) -> None:
    finance_requires_2fa(app)
    first = app.start_registration(ENV, BOB, registration_login(app)).secret

    again = app.start_registration(ENV, BOB, registration_login(app)).secret
    carols = app.start_registration(ENV, CAROL, registration_login(app, CAROL, CAROL_PASSWORD))

    assert len({first, again, carols.secret}) == 3


def test_the_otpauth_uri_follows_the_key_uri_format(app: AeroAuth) -> None:
    finance_requires_2fa(app)

    registration = app.start_registration(ENV, BOB, registration_login(app))

    uri = urlparse(registration.otpauth_uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/{ISSUER}:{BOB}"
    query = parse_qs(uri.query)
    assert query["secret"] == [registration.secret]
    assert not re.search(r"=(?:=|%3D)|%3D", uri.query), "Base32 padding in the URI"
    assert query["issuer"] == [ISSUER]


def test_the_first_code_from_the_app_registers_it_and_completes_the_login(
    app: AeroAuth, clock: FixedClock
) -> None:
    finance_requires_2fa(app)
    challenge = registration_login(app)
    secret = app.start_registration(ENV, BOB, challenge).secret
    before = position(app)

    completed = app.confirm_registration(ENV, BOB, challenge, code_at(secret, clock.now()))

    assert types(events_since(app, before)) == [
        UserCredential.AuthenticatorRegistered,
        UserCredential.RecoveryCodesIssued,
        UserCredential.LoginSucceeded,
    ]
    assert completed.user.registered
    assert completed.recovery_codes is not None
    assert len(completed.recovery_codes) == 10


def test_a_wrong_first_code_registers_nothing(app: AeroAuth, clock: FixedClock) -> None:
    finance_requires_2fa(app)
    challenge = registration_login(app)
    secret = app.start_registration(ENV, BOB, challenge).secret
    before = position(app)

    with pytest.raises(InvalidCodeError):
        app.confirm_registration(ENV, BOB, challenge, code_at(secret, clock.now(), 3))

    assert types(events_since(app, before)) == [UserCredential.CodeRejected]
    assert not app.user(ENV, BOB).registered


def test_confirming_before_asking_for_a_secret_is_refused(app: AeroAuth) -> None:
    finance_requires_2fa(app)
    challenge = registration_login(app)

    with pytest.raises(InvalidChallengeError):
        app.confirm_registration(ENV, BOB, challenge, "123456")


def test_after_a_reset_the_old_secret_and_recovery_codes_stop_working_and_the_user_registers_again(
    app: AeroAuth, clock: FixedClock
) -> None:
    old = bob_registered(app, clock)

    app.reset_two_factor(ENV, BOB, "lost phone, ticket 4711")

    challenge = registration_login(app)
    new_secret = app.start_registration(ENV, BOB, challenge).secret
    assert new_secret != old.secret
    with pytest.raises(InvalidCodeError):
        app.confirm_registration(ENV, BOB, challenge, code_at(old.secret, clock.now()))
    app.confirm_registration(ENV, BOB, challenge, code_at(new_secret, clock.now()))
    clock.advance(seconds=30)
    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, code_login(app), code_at(old.secret, clock.now()))
    with pytest.raises(InvalidCodeError):
        app.use_recovery_code(ENV, BOB, code_login(app), old.recovery_codes[0])
    app.verify_code(ENV, BOB, code_login(app), code_at(new_secret, clock.now()))


def test_a_registered_user_is_asked_for_a_code_even_when_no_longer_required(
    app: AeroAuth, clock: FixedClock
) -> None:
    bob_registered(app, clock)

    app.set_policy(ENV, False, [])

    assert app.start_login(ENV, BOB, BOB_PASSWORD).status == "two_factor_required"


def test_a_reset_user_who_is_not_required_logs_in_with_the_password_alone(
    app: AeroAuth, clock: FixedClock
) -> None:
    bob_registered(app, clock)
    app.set_policy(ENV, False, [])

    app.reset_two_factor(ENV, BOB, "left finance")

    assert app.start_login(ENV, BOB, BOB_PASSWORD).status == "authenticated"


def test_a_user_may_register_again_later_in_a_new_login(app: AeroAuth, clock: FixedClock) -> None:
    finance_requires_2fa(app)
    registration_login(app)

    enrolled = register(app, clock)

    app.verify_code(ENV, BOB, code_login(app), code_at(enrolled.secret, clock.now()))
