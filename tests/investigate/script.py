"""The scripted history of environment acme that every investigation test reads.

Every instant is in the past (March 2026), because the CLI opens its own
application with the system clock and refuses instants in the future.

    09:00:00  operator creates acme, admin alice      09:05  globex created, with its own bob
    09:10:00  alice creates bob (finance)             09:11  alice creates carol (sales)
    09:20:00  policy: require 2FA of everyone         09:30  policy: only the finance group
    09:40:00  bob registers an authenticator          09:45  bob mistypes his password
    09:50:00  carol's groups become finance, sales    10:10  alice resets bob's 2FA
    10:20:00  policy: 2FA no longer required          10:30  alice creates dave
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from application.clock import FixedClock
from application.history import History
from application.service import AeroAuth
from domain.errors import InvalidCredentialsError
from domain.origin import Origin, originating
from interfaces.settings import Settings
from tests.conftest import DatabaseUnderTest
from tests.support import PASSWORDS as PASSWORDS
from tests.support import cli_env, code_at

ENV = "acme"
OTHER_ENV = "globex"
OPERATOR = Origin(actor="operator", ip="192.0.2.1", user_agent="curl/8.5")
ADMIN = Origin(actor="alice", ip="198.51.100.7", user_agent="Mozilla/5.0 (admin console)")
BOB_DEVICE = Origin(actor="bob", ip="203.0.113.9", user_agent="Mozilla/5.0 (bob's laptop)")


def at(hhmmss: str) -> datetime:
    """An instant of the scripted day, 2026-03-03, in UTC."""
    return datetime.fromisoformat(f"2026-03-03T{hhmmss}+00:00")


@dataclass
class Scripted:
    """The recorded history, the application that recorded it, and where it lives."""

    app: AeroAuth
    clock: FixedClock
    settings: Settings
    database: DatabaseUnderTest
    bob_secret: str

    def history(self) -> History:
        return History(self.app)

    def cli_env(self) -> dict[str, str]:
        """The same configuration as ``settings``, as the CLI reads it: AERO_ variables."""
        return cli_env(self.settings, operator_token=True)


def record_history(app: AeroAuth, clock: FixedClock) -> str:
    """Drive the commands of the module docstring's script; return bob's TOTP secret."""
    clock.set(at("09:00:00"))
    with originating(OPERATOR):
        app.create_environment(ENV, "Acme", "BizzStream Aero", "alice", PASSWORDS["alice"])
    clock.set(at("09:05:00"))
    with originating(OPERATOR):
        app.create_environment(OTHER_ENV, "Globex", "BizzStream Aero", "bob", PASSWORDS["bob"])
    with originating(ADMIN):
        clock.set(at("09:10:00"))
        app.create_user(ENV, "bob", PASSWORDS["bob"], groups=["finance"])
        clock.set(at("09:11:00"))
        app.create_user(ENV, "carol", PASSWORDS["carol"], groups=["sales"])
        clock.set(at("09:20:00"))
        app.set_policy(ENV, True, [])
        clock.set(at("09:30:00"))
        app.set_policy(ENV, True, ["finance"])
    with originating(BOB_DEVICE):
        clock.set(at("09:40:00"))
        step = app.start_login(ENV, "bob", PASSWORDS["bob"])
        assert step.status == "two_factor_registration_required"
        assert step.challenge_id is not None
        registration = app.start_registration(ENV, "bob", step.challenge_id)
        code = code_at(registration.secret, clock.now())
        app.confirm_registration(ENV, "bob", step.challenge_id, code)
        clock.set(at("09:45:00"))
        with pytest.raises(InvalidCredentialsError):
            app.start_login(ENV, "bob", "not bob's password at all")
    with originating(ADMIN):
        clock.set(at("09:50:00"))
        app.change_groups(ENV, "carol", ["finance", "sales"])
        clock.set(at("10:10:00"))
        app.reset_two_factor(ENV, "bob", "lost phone, ticket 4711")
        clock.set(at("10:20:00"))
        app.set_policy(ENV, False, ["finance"])
        clock.set(at("10:30:00"))
        app.create_user(ENV, "dave", PASSWORDS["dave"])
    clock.set(at("11:00:00"))
    return registration.secret
