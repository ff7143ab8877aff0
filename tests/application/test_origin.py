"""Every event says who acted and from where; a login is the user's own act (SECURITY.md 18)."""

from __future__ import annotations

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.credential import UserCredential
from domain.environment import Environment
from domain.errors import InvalidCodeError, InvalidCredentialsError
from domain.origin import Origin, originating
from domain.unknown_user import UnknownUserLogin
from tests.application.helpers import (
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    CAROL,
    CAROL_PASSWORD,
    ENV,
    ISSUER,
    code_at,
    events_since,
    position,
)

ADMIN_DESK = Origin(actor=ALICE, ip="198.51.100.4", user_agent="AeroAdmin/1.0")
BOBS_PHONE = Origin(actor=None, ip="203.0.113.7", user_agent="Mozilla/5.0 (bob's phone)")


def test_admin_commands_record_the_admin_and_where_the_request_came_from(
    app: AeroAuth,
) -> None:
    with originating(Origin(actor="operator", ip="192.0.2.1", user_agent="curl/8")):
        app.create_environment(ENV, "Acme", ISSUER, ALICE, ALICE_PASSWORD)
    before = position(app)

    with originating(ADMIN_DESK):
        app.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"])
        app.set_policy(ENV, True, ["finance"])
        app.change_groups(ENV, BOB, ["finance", "hr"])
        app.change_roles(ENV, BOB, ["auditor"])
        app.change_password(ENV, BOB, "another long password")
        app.reset_two_factor(ENV, BOB, "ticket 4711")

    first = events_since(app, 0)[0]
    assert isinstance(first, Environment.Created)
    assert (first.actor, first.ip, first.user_agent) == ("operator", "192.0.2.1", "curl/8")
    events = events_since(app, before)
    assert len(events) == 7
    for event in events:
        assert (event.actor, event.ip, event.user_agent) == (
            ALICE,
            ADMIN_DESK.ip,
            ADMIN_DESK.user_agent,
        ), type(event).__name__


def test_login_events_name_the_user_as_actor_as_created_whatever_case_was_typed(
    app: AeroAuth, clock: FixedClock
) -> None:
    with originating(ADMIN_DESK):
        app.create_environment(ENV, "Acme", ISSUER, ALICE, ALICE_PASSWORD)
        app.create_user(ENV, "Bob", BOB_PASSWORD, groups=["finance"])
        app.create_user(ENV, CAROL, CAROL_PASSWORD)
        app.set_policy(ENV, True, ["finance"])
    before = position(app)

    with originating(BOBS_PHONE):
        with pytest.raises(InvalidCredentialsError):
            app.start_login(ENV, "BOB", "not bob's password")
        with pytest.raises(InvalidCredentialsError):
            app.start_login(ENV, "mallory", "guessing a password")
        step = app.start_login(ENV, "bob", BOB_PASSWORD)
        assert step.challenge_id is not None
        secret = app.start_registration(ENV, "BOB", step.challenge_id).secret
        with pytest.raises(InvalidCodeError):
            app.confirm_registration(ENV, "bob", step.challenge_id, "12345")
        app.confirm_registration(ENV, "bob", step.challenge_id, code_at(secret, clock.now()))
        clock.advance(seconds=30)
        step = app.start_login(ENV, "BOB", BOB_PASSWORD)
        assert step.challenge_id is not None
        app.verify_code(ENV, "bob", step.challenge_id, code_at(secret, clock.now()))
        app.regenerate_recovery_codes(ENV, "bob")
        app.start_login(ENV, "CAROL", CAROL_PASSWORD)

    events = events_since(app, before)
    assert {type(e) for e in events} >= {
        UserCredential.PasswordStepFailed,
        UnknownUserLogin.Created,
        UserCredential.PasswordStepSucceeded,
        UserCredential.RegistrationStarted,
        UserCredential.CodeRejected,
        UserCredential.AuthenticatorRegistered,
        UserCredential.RecoveryCodesIssued,
        UserCredential.CodeAccepted,
        UserCredential.LoginSucceeded,
    }
    for event in events:
        expected = (
            "mallory"
            if isinstance(event, UnknownUserLogin.Created)
            else (CAROL if event.originator_id == app.user(ENV, CAROL).id else "Bob")
        )
        assert (event.actor, event.ip, event.user_agent) == (
            expected,
            BOBS_PHONE.ip,
            BOBS_PHONE.user_agent,
        ), type(event).__name__
