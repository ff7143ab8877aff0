"""Login challenges: single use, latest only, five minutes, one step (SECURITY.md 11 and 13)."""

from __future__ import annotations

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.errors import InvalidChallengeError
from tests.application.helpers import (
    BOB,
    BOB_PASSWORD,
    ENV,
    bob_registered,
    code_at,
    code_login,
    position,
    with_environment,
)


def test_a_challenge_completes_one_login_only(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    clock.advance(seconds=30)

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    with pytest.raises(InvalidChallengeError):
        app.use_recovery_code(ENV, BOB, challenge, enrolled.recovery_codes[0])


def test_a_newer_login_supersedes_the_pending_one(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    older = code_login(app)
    newer = code_login(app)
    code = code_at(enrolled.secret, clock.now())

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, older, code)
    app.verify_code(ENV, BOB, newer, code)


def test_a_challenge_is_good_for_five_minutes(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)

    clock.advance(minutes=4, seconds=59)

    app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))


def test_a_challenge_expires_after_five_minutes(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    clock.advance(minutes=5, seconds=1)
    before = position(app)

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))

    assert position(app) == before


def test_a_registration_challenge_is_refused_by_the_code_step(app: AeroAuth) -> None:
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"])
    app.set_policy(ENV, True, ["finance"])
    step = app.start_login(ENV, BOB, BOB_PASSWORD)
    assert step.challenge_id is not None

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, step.challenge_id, "123456")
    with pytest.raises(InvalidChallengeError):
        app.use_recovery_code(ENV, BOB, step.challenge_id, "0000-0000-0000-0000")


def test_a_code_step_challenge_is_refused_by_the_registration(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)

    with pytest.raises(InvalidChallengeError):
        app.start_registration(ENV, BOB, challenge)
    with pytest.raises(InvalidChallengeError):
        app.confirm_registration(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))


def test_a_challenge_is_bound_to_its_user(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    app.create_user(ENV, "carol", "she keeps the books", groups=["finance"])
    carols = app.start_login(ENV, "carol", "she keeps the books")
    assert carols.challenge_id is not None

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, carols.challenge_id, code_at(enrolled.secret, clock.now()))


def test_a_password_step_without_2fa_leaves_no_challenge(app: AeroAuth) -> None:
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)

    step = app.start_login(ENV, BOB, BOB_PASSWORD)

    assert (step.status, step.challenge_id, step.expires_at) == ("authenticated", None, None)
    assert app.user(ENV, BOB).challenge_id is None


def test_an_admin_reset_ends_pending_logins_and_sessions(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    registration_login = app.user(ENV, BOB).last_login_version
    assert registration_login is not None
    challenge = code_login(app)
    clock.advance(seconds=5)

    app.reset_two_factor(ENV, BOB, "lost phone, ticket 4711")

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    user = app.user(ENV, BOB)
    assert user.sessions_valid_after == clock.now()
    assert not user.session_valid(registration_login)


def test_an_admin_password_change_ends_pending_logins_and_sessions(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    clock.advance(seconds=5)

    app.change_password(ENV, BOB, "a new password from the admin")

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    assert app.user(ENV, BOB).sessions_valid_after == clock.now()


def test_the_users_own_password_change_ends_pending_logins_and_sessions(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    clock.advance(seconds=5)

    app.change_own_password(ENV, BOB, BOB_PASSWORD, "my own new passphrase")

    with pytest.raises(InvalidChallengeError):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    assert app.user(ENV, BOB).sessions_valid_after == clock.now()
