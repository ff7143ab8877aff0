"""The code step: strict input, a window of one step, no replays, throttling (SECURITY.md 3-6)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from application.clock import FixedClock
from application.service import AeroAuth, SecurityPolicy
from domain.credential import UserCredential
from domain.errors import (
    InvalidChallengeError,
    InvalidCodeError,
    TooManyAttemptsError,
    TwoFactorDisabledError,
)
from domain.throttle import Throttle
from domain.totp import time_step
from interfaces.composition import secret_box
from interfaces.settings import Settings
from tests.application.conftest import BuildApp
from tests.application.helpers import (
    BOB,
    ENV,
    CountingBox,
    Enrolled,
    SavesTogether,
    bob_registered,
    code_at,
    code_login,
    events_since,
    position,
    race,
    register,
    types,
)

WRONG_CODE = "000000"


def wrong_code(secret: str, app: AeroAuth) -> str:
    """A well-formed code that no step of the window produces."""
    now = app.clock.now()
    window = {code_at(secret, now, s) for s in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)


def fail_codes(app: AeroAuth, enrolled: Enrolled, times: int, challenge: str | None = None) -> None:
    challenge = challenge or code_login(app)
    for _ in range(times):
        with pytest.raises(InvalidCodeError):
            app.verify_code(ENV, BOB, challenge, wrong_code(enrolled.secret, app))


def full_width(digits: str) -> str:
    return "".join(chr(0xFF10 + int(d)) for d in digits)


def test_the_app_code_completes_a_login(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    before = position(app)

    completed = app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))

    assert completed.user.username == BOB
    accepted, succeeded = events_since(app, before)
    assert isinstance(accepted, UserCredential.CodeAccepted)
    assert accepted.time_step == time_step(clock.now())
    assert isinstance(succeeded, UserCredential.LoginSucceeded)
    assert succeeded.method == "totp"


def test_codes_of_one_step_either_side_are_accepted_and_two_steps_away_refused(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    clock.advance(minutes=10)
    now = clock.now()

    for steps in (-2, 2):
        challenge = code_login(app)
        before = position(app)
        with pytest.raises(InvalidCodeError):
            app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, now, steps))
        [rejected] = events_since(app, before)
        assert isinstance(rejected, UserCredential.CodeRejected)
        assert rejected.reason == "wrong"
    # Ascending, so that no accepted step is at or before the last one.
    for steps in (-1, 0, 1):
        completed = app.verify_code(ENV, BOB, code_login(app), code_at(enrolled.secret, now, steps))
        assert completed.user.last_used_step == time_step(now) + steps


MALFORMED = {
    "full-width digits": full_width,
    "a space inside": lambda code: f"{code[:3]} {code[3:]}",
    "a leading space": lambda code: f" {code}",
    "a trailing newline": lambda code: f"{code}\n",
    "five digits": lambda code: code[:5],
    "seven digits": lambda code: f"{code}0",
    "an integer": int,
    "nothing": lambda code: None,
}


def test_malformed_forms_of_the_right_code_are_refused_unchecked_and_each_counts_as_a_failure(
    app: AeroAuth, build_app: BuildApp, clock: FixedClock, settings: Settings
) -> None:
    enrolled = bob_registered(app, clock)
    box = CountingBox(secret_box(settings))
    service = build_app(box=box)

    for form, malform in MALFORMED.items():
        challenge = code_login(service)
        code = code_at(enrolled.secret, clock.now())
        before, decryptions = position(app), box.decryptions

        with pytest.raises(InvalidCodeError):
            service.verify_code(ENV, BOB, challenge, malform(code))

        [rejected] = events_since(app, before)
        assert isinstance(rejected, UserCredential.CodeRejected), form
        assert rejected.reason == "malformed", form
        assert box.decryptions == decryptions, f"{form} reached the secret"
        assert service.user(ENV, BOB).code_failures == 1, form
        # The right code still works, and resets the count for the next form.
        service.verify_code(ENV, BOB, challenge, code)
        clock.advance(seconds=30)


def test_five_malformed_codes_lock_the_code_step_like_five_wrong_ones(
    app: AeroAuth, clock: FixedClock
) -> None:
    bob_registered(app, clock)
    challenge = code_login(app)
    for code in ["12345", "1234567", " 12345", "12345a"]:
        with pytest.raises(InvalidCodeError):
            app.verify_code(ENV, BOB, challenge, code)
    before = position(app)

    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, full_width("123456"))

    assert types(events_since(app, before)) == [
        UserCredential.CodeRejected,
        UserCredential.CodeStepLocked,
    ]


def test_the_code_that_confirmed_the_registration_cannot_be_used_again(
    app: AeroAuth, clock: FixedClock
) -> None:
    # The registration confirmed the code of the step one before now.
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    before = position(app)

    with pytest.raises(InvalidCodeError, match="already used"):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now(), -1))

    [replayed] = events_since(app, before)
    assert isinstance(replayed, UserCredential.CodeReplayed)
    assert replayed.time_step == time_step(clock.now()) - 1


def test_an_accepted_code_is_refused_at_the_next_login_as_a_replay(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    code = code_at(enrolled.secret, clock.now())
    app.verify_code(ENV, BOB, code_login(app), code)
    challenge = code_login(app)
    before = position(app)

    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, code)

    assert types(events_since(app, before)) == [UserCredential.CodeReplayed]
    assert app.user(ENV, BOB).code_failures == 1


def test_a_code_older_than_the_last_accepted_one_is_a_replay(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    clock.advance(minutes=5)
    app.verify_code(ENV, BOB, code_login(app), code_at(enrolled.secret, clock.now()))
    challenge = code_login(app)
    before = position(app)

    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now(), -1))

    assert types(events_since(app, before)) == [UserCredential.CodeReplayed]


def test_two_concurrent_submissions_of_one_valid_code_let_exactly_one_in(
    app: AeroAuth, build_app: BuildApp, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    code = code_at(enrolled.secret, clock.now())
    SavesTogether.barrier = threading.Barrier(2)
    first, second = build_app(SavesTogether), build_app(SavesTogether)
    before = position(app)

    results = race(
        lambda: first.verify_code(ENV, BOB, challenge, code),
        lambda: second.verify_code(ENV, BOB, challenge, code),
    )

    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1, results
    assert isinstance(refused[0], InvalidCodeError), refused
    stored = types(events_since(app, before))
    assert stored.count(UserCredential.LoginSucceeded) == 1
    assert stored.count(UserCredential.CodeReplayed) == 1


def test_fifth_consecutive_failure_is_refused_and_locks_the_code_step_for_five_minutes(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    fail_codes(app, enrolled, 4, challenge)
    before = position(app)

    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, wrong_code(enrolled.secret, app))

    rejected, locked = events_since(app, before)
    assert isinstance(rejected, UserCredential.CodeRejected)
    assert isinstance(locked, UserCredential.CodeStepLocked)
    assert locked.locked_until == clock.now() + timedelta(minutes=5)


def test_while_locked_even_the_right_code_gets_too_many_attempts_with_retry_after(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    fail_codes(app, enrolled, 5, challenge)
    clock.advance(minutes=1)
    before = position(app)

    with pytest.raises(TooManyAttemptsError) as error:
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))

    assert error.value.retry_after == 4 * 60
    assert error.value.code == "too_many_attempts"
    assert types(events_since(app, before)) == [UserCredential.CodeStepThrottled]
    with pytest.raises(TooManyAttemptsError):
        app.use_recovery_code(ENV, BOB, challenge, enrolled.recovery_codes[0])


def test_the_code_step_opens_again_when_the_lock_ends(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    fail_codes(app, enrolled, 5)
    clock.advance(minutes=5)

    app.verify_code(ENV, BOB, code_login(app), code_at(enrolled.secret, clock.now()))


def test_code_lockouts_double_from_five_minutes_up_to_an_hour(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    lockouts = []

    for _ in range(6):
        fail_codes(app, enrolled, 5)
        until = app.user(ENV, BOB).code_locked_until
        assert until is not None
        lockouts.append((until - clock.now()) / timedelta(minutes=1))
        clock.set(until)

    assert lockouts == [5, 10, 20, 40, 60, 60]


def test_a_success_resets_the_failures_and_the_lockout_doubling(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    fail_codes(app, enrolled, 5)
    clock.advance(minutes=5)
    fail_codes(app, enrolled, 5)
    clock.advance(minutes=10)
    challenge = code_login(app)
    fail_codes(app, enrolled, 4, challenge)
    app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    fail_codes(app, enrolled, 4)
    before = position(app)

    fail_codes(app, enrolled, 1)

    *_, locked = events_since(app, before)
    assert isinstance(locked, UserCredential.CodeStepLocked)
    assert locked.locked_until == clock.now() + timedelta(minutes=5)


def test_failures_count_across_login_challenges(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    fail_codes(app, enrolled, 3)
    challenge = code_login(app)
    fail_codes(app, enrolled, 1, challenge)
    before = position(app)

    fail_codes(app, enrolled, 1, challenge)

    assert types(events_since(app, before)) == [
        UserCredential.CodeRejected,
        UserCredential.CodeStepLocked,
    ]


def test_recovery_code_failures_count_in_the_same_counter(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    fail_codes(app, enrolled, 3, challenge)
    with pytest.raises(InvalidCodeError):
        app.use_recovery_code(ENV, BOB, challenge, "0000-0000-0000-0000")
    before = position(app)

    with pytest.raises(InvalidCodeError):
        app.use_recovery_code(ENV, BOB, challenge, "not a recovery code")

    rejected, locked = events_since(app, before)
    assert isinstance(rejected, UserCredential.CodeRejected)
    assert (rejected.kind, rejected.reason) == ("recovery", "malformed")
    assert isinstance(locked, UserCredential.CodeStepLocked)
    with pytest.raises(TooManyAttemptsError):
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))


def test_the_throttle_is_a_setting_injected_into_the_application(
    app: AeroAuth, build_app: BuildApp, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    strict = Throttle(2, timedelta(minutes=30), timedelta(hours=2), disable_after=10)
    service = build_app(security=SecurityPolicy(code_throttle=strict))
    challenge = code_login(service)
    fail_codes(service, enrolled, 1, challenge)
    before = position(app)

    fail_codes(service, enrolled, 1, challenge)

    *_, locked = events_since(app, before)
    assert isinstance(locked, UserCredential.CodeStepLocked)
    assert locked.locked_until == clock.now() + timedelta(minutes=30)


def test_a_locked_code_step_never_locks_the_password_step(app: AeroAuth, clock: FixedClock) -> None:
    enrolled = bob_registered(app, clock)
    fail_codes(app, enrolled, 5)

    step = app.start_login(ENV, BOB, "my long secret phrase")

    assert step.status == "two_factor_required"


def fail_until_disabled(app: AeroAuth, enrolled: Enrolled, clock: FixedClock) -> None:
    """100 wrong codes in all: twenty lockouts, each waited out, each with a new login."""
    for _ in range(20):
        fail_codes(app, enrolled, 5)
        until = app.user(ENV, BOB).code_locked_until
        assert until is not None
        clock.set(until)


def test_a_hundred_failures_in_all_disable_the_authenticator_until_an_admin_reset(
    app: AeroAuth, clock: FixedClock
) -> None:
    enrolled = bob_registered(app, clock)
    fail_until_disabled(app, enrolled, clock)
    events = events_since(app, 0)
    [disabled] = [e for e in events if isinstance(e, UserCredential.AuthenticatorDisabled)]
    assert disabled.total_failures == 100
    assert sum(isinstance(e, UserCredential.CodeRejected) for e in events) == 100
    challenge = code_login(app)

    with pytest.raises(TwoFactorDisabledError) as error:
        app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    assert error.value.code == "two_factor_disabled"
    with pytest.raises(TwoFactorDisabledError):
        app.use_recovery_code(ENV, BOB, challenge, enrolled.recovery_codes[0])
    # The user cannot enrol another app alone: this login is not a registration.
    with pytest.raises(InvalidChallengeError):
        app.start_registration(ENV, BOB, challenge)
    clock.advance(days=7)
    with pytest.raises(TwoFactorDisabledError):
        app.verify_code(ENV, BOB, code_login(app), code_at(enrolled.secret, clock.now()))

    app.reset_two_factor(ENV, BOB, "locked out, ticket 4712")

    again = register(app, clock)
    app.verify_code(ENV, BOB, code_login(app), code_at(again.secret, clock.now()))
