"""Recovery codes: ten, shown once, stored salted and hashed, each good once (SECURITY.md 14)."""

from __future__ import annotations

import re

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.credential import UserCredential
from domain.errors import InvalidChallengeError, InvalidCodeError, TwoFactorNotRegisteredError
from tests.application.helpers import (
    BOB,
    ENV,
    bob_registered,
    code_login,
    events_since,
    position,
    with_environment,
)

FORMAT = re.compile(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}")


def test_registration_issues_ten_distinct_codes_of_64_bits(
    app: AeroAuth, clock: FixedClock
) -> None:
    codes = bob_registered(app, clock).recovery_codes

    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        assert FORMAT.fullmatch(code)


def test_codes_are_stored_only_as_hashes_each_with_its_own_salt(
    app: AeroAuth, clock: FixedClock
) -> None:
    codes = bob_registered(app, clock).recovery_codes

    [issued] = [
        e for e in events_since(app, 0) if isinstance(e, UserCredential.RecoveryCodesIssued)
    ]
    assert len(issued.code_hashes) == 10
    salts = {h.split("$")[0] for h in issued.code_hashes}
    assert len(salts) == 10
    stored = " ".join(issued.code_hashes)
    for code in codes:
        assert code not in stored
        assert code.replace("-", "") not in stored


def test_a_recovery_code_completes_a_login_and_its_use_is_audited(
    app: AeroAuth, clock: FixedClock
) -> None:
    codes = bob_registered(app, clock).recovery_codes
    challenge = code_login(app)
    before = position(app)

    app.use_recovery_code(ENV, BOB, challenge, codes[3])

    used, succeeded = events_since(app, before)
    assert isinstance(used, UserCredential.RecoveryCodeUsed)
    assert used.remaining == 9
    assert used.actor == BOB
    assert isinstance(succeeded, UserCredential.LoginSucceeded)
    assert succeeded.method == "recovery"


def test_each_recovery_code_works_once(app: AeroAuth, clock: FixedClock) -> None:
    codes = bob_registered(app, clock).recovery_codes
    app.use_recovery_code(ENV, BOB, code_login(app), codes[0])
    challenge = code_login(app)
    before = position(app)

    with pytest.raises(InvalidCodeError):
        app.use_recovery_code(ENV, BOB, challenge, codes[0])

    [rejected] = events_since(app, before)
    assert isinstance(rejected, UserCredential.CodeRejected)
    assert (rejected.kind, rejected.reason) == ("recovery", "wrong")
    app.use_recovery_code(ENV, BOB, challenge, codes[1])


@pytest.mark.parametrize(
    "typed", [str.upper, lambda c: c.replace("-", ""), lambda c: c.replace("-", "").upper()]
)
def test_codes_are_accepted_in_either_case_with_or_without_dashes(
    app: AeroAuth, clock: FixedClock, typed: object
) -> None:
    codes = bob_registered(app, clock).recovery_codes

    app.use_recovery_code(ENV, BOB, code_login(app), typed(codes[0]))  # type: ignore[operator]


def test_a_new_set_invalidates_the_old_one(app: AeroAuth, clock: FixedClock) -> None:
    old = bob_registered(app, clock).recovery_codes
    before = position(app)

    new = app.regenerate_recovery_codes(ENV, BOB)

    [issued] = events_since(app, before)
    assert isinstance(issued, UserCredential.RecoveryCodesIssued)
    assert issued.actor == BOB
    assert len(new) == 10
    assert not set(new) & set(old)
    challenge = code_login(app)
    for code in old[:3]:
        with pytest.raises(InvalidCodeError):
            app.use_recovery_code(ENV, BOB, challenge, code)
    app.use_recovery_code(ENV, BOB, challenge, new[0])


def test_no_recovery_codes_without_an_authenticator(app: AeroAuth) -> None:
    with_environment(app)
    app.create_user(ENV, BOB, "my long secret phrase")
    before = position(app)

    with pytest.raises(TwoFactorNotRegisteredError):
        app.regenerate_recovery_codes(ENV, BOB)

    assert position(app) == before


def test_a_login_without_an_authenticator_cannot_use_recovery_codes(
    app: AeroAuth, clock: FixedClock
) -> None:
    codes = bob_registered(app, clock).recovery_codes
    app.reset_two_factor(ENV, BOB, "lost phone")
    step = app.start_login(ENV, BOB, "my long secret phrase")
    assert step.challenge_id is not None
    before = position(app)

    with pytest.raises(InvalidChallengeError):
        app.use_recovery_code(ENV, BOB, step.challenge_id, codes[0])

    assert position(app) == before
