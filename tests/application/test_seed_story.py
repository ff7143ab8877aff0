"""The story of the help article (shared/seed), told against the application on each store.

An admin requires 2FA for the group finance. Bob, in finance, must register an
authenticator app at his next login, and from then on is asked for its code.
After the admin resets him he registers again. Carol, not in finance, keeps
logging in with her password alone.
"""

from __future__ import annotations

import pyotp

from application.clock import FixedClock
from application.service import AeroAuth
from domain.origin import Origin, originating
from tests.application.helpers import (
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    CAROL,
    CAROL_PASSWORD,
    ENV,
    ISSUER,
)

ADMIN = Origin(actor=ALICE, ip="198.51.100.4", user_agent="AeroAdmin/1.0")
OFFICE = Origin(ip="203.0.113.7", user_agent="Mozilla/5.0")


def scan(app: AeroAuth, challenge: str) -> pyotp.TOTP:
    """Bob's authenticator app reads the otpauth URI the QR code carries."""
    registration = app.start_registration(ENV, BOB, challenge)
    app_entry = pyotp.parse_uri(registration.otpauth_uri)
    assert isinstance(app_entry, pyotp.TOTP)
    assert app_entry.issuer == ISSUER and app_entry.name == BOB
    return app_entry


def test_finance_must_use_2fa_bob_registers_is_asked_for_codes_and_registers_again_after_a_reset(
    app: AeroAuth, clock: FixedClock
) -> None:
    with originating(Origin(actor="operator")):
        app.create_environment(ENV, "Acme", ISSUER, ALICE, ALICE_PASSWORD)
    with originating(ADMIN):
        app.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"])
        app.create_user(ENV, CAROL, CAROL_PASSWORD, groups=["sales"])

        # The admin checks "Require 2FA" and selects the group finance.
        app.set_policy(ENV, True, ["finance"])

    with originating(OFFICE):
        # Bob's first login after the requirement: he must register.
        login = app.start_login(ENV, BOB, BOB_PASSWORD)
        assert login.status == "two_factor_registration_required"
        assert login.challenge_id is not None
        authenticator = scan(app, login.challenge_id)
        done = app.confirm_registration(ENV, BOB, login.challenge_id, authenticator.at(clock.now()))
        assert done.user.registered
        assert done.recovery_codes is not None and len(done.recovery_codes) == 10

        # The next day, each login asks for the code from the app.
        clock.advance(days=1)
        login = app.start_login(ENV, BOB, BOB_PASSWORD)
        assert login.status == "two_factor_required"
        assert login.challenge_id is not None
        app.verify_code(ENV, BOB, login.challenge_id, authenticator.at(clock.now()))

        # Carol is not in finance: her password is enough.
        assert app.start_login(ENV, CAROL, CAROL_PASSWORD).status == "authenticated"

    # Bob lost his phone; the admin resets his 2FA.
    with originating(ADMIN):
        app.reset_two_factor(ENV, BOB, "lost phone, ticket 4711")

    with originating(OFFICE):
        clock.advance(minutes=10)
        login = app.start_login(ENV, BOB, BOB_PASSWORD)
        assert login.status == "two_factor_registration_required"
        assert login.challenge_id is not None
        new_authenticator = scan(app, login.challenge_id)
        assert new_authenticator.secret != authenticator.secret
        app.confirm_registration(ENV, BOB, login.challenge_id, new_authenticator.at(clock.now()))

        clock.advance(minutes=1)
        login = app.start_login(ENV, BOB, BOB_PASSWORD)
        assert login.status == "two_factor_required"
        assert login.challenge_id is not None
        app.verify_code(ENV, BOB, login.challenge_id, new_authenticator.at(clock.now()))
        assert app.start_login(ENV, CAROL, CAROL_PASSWORD).status == "authenticated"
