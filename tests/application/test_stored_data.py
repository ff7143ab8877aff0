"""The event store holds no secret, password, recovery code or challenge (SECURITY.md 15)."""

from __future__ import annotations

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.errors import InvalidCredentialsError
from tests.application.helpers import (
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    ENV,
    bob_registered,
    code_at,
    code_login,
)
from tests.conftest import DatabaseUnderTest


def holds(raw: bytes, value: str) -> bool:
    """Whether the raw store holds ``value``: as text, or hex-encoded as COPY writes a bytea."""
    return value.encode() in raw or value.encode().hex().encode() in raw


def forms(value: str) -> set[str]:
    """How a recovery code could sit in the store: as shown, compact, upper or lower case."""
    compact = value.replace("-", "")
    return {value, compact, compact.upper(), value.upper()}


def test_raw_store_holds_no_secret_password_recovery_code_or_challenge(
    app: AeroAuth, clock: FixedClock, database: DatabaseUnderTest
) -> None:
    enrolled = bob_registered(app, clock)
    challenges = []
    with pytest.raises(InvalidCredentialsError):
        app.start_login(ENV, BOB, "a wrong password tried")
    challenge = code_login(app)
    challenges.append(challenge)
    app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))
    challenge = code_login(app)
    challenges.append(challenge)
    app.use_recovery_code(ENV, BOB, challenge, enrolled.recovery_codes[0])
    new_codes = app.regenerate_recovery_codes(ENV, BOB)
    challenges.append(code_login(app))  # a login left pending
    app.close()  # SQLite: everything written, WAL included

    raw = database.raw_bytes()

    assert holds(raw, "$argon2id$v=19$"), "the raw read does see the stored events"
    assert not holds(raw, enrolled.secret)
    for password in (BOB_PASSWORD, ALICE_PASSWORD, "a wrong password tried"):
        assert not holds(raw, password)
    for code in enrolled.recovery_codes + new_codes:
        for form in forms(code):
            assert not holds(raw, form), code
    for challenge in challenges:
        assert not holds(raw, challenge)
