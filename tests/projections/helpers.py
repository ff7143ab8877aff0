"""The commands the read-model tests drive the views with."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from application.clock import FixedClock
from application.service import AeroAuth
from domain.totp import WINDOW, hotp, time_step
from projections.api import AuditEntry, AuditQuery
from projections.live import LiveReadModels
from tests.support import ADMIN, ADMIN_PASSWORD, ISSUER, PASSWORD

# Text that trips escaping: quotes, a backslash, control and line-separator
# characters, an emoji and markup.
AWKWARD = 'Zoë "q" \\ \t\n\x1f\x7f \u2028 \U0001f600 <&>'


def entries(read_models: LiveReadModels, **filters: object) -> list[AuditEntry]:
    """The audit entries of acme that pass ``filters`` (AuditQuery's), oldest first."""
    return list(read_models.export_audit(AuditQuery("acme", **filters)))  # type: ignore[arg-type]


def make_environment(app: AeroAuth, slug: str = "acme") -> None:
    app.create_environment(slug, slug.title(), ISSUER, ADMIN, ADMIN_PASSWORD)


def toggle_groups(app: AeroAuth, clock: FixedClock, slug: str, username: str, times: int) -> None:
    """Many events for the price of one save: no password hashing involved."""
    user = app.user(slug, username)
    for i in range(times):
        user.change_groups([f"team-{i % 2}"], clock.now())
    app.save(user)


def wrong_code(secret: str, at: datetime) -> str:
    """A well-formed code the authenticator shows at no step within the window."""
    step = time_step(at)
    valid = {hotp(secret, step + offset) for offset in range(-WINDOW, WINDOW + 1)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


def login_challenge(app: AeroAuth, slug: str, username: str, password: str = PASSWORD) -> str:
    """The password step of a user with an authenticator: the challenge for the code step."""
    step = app.start_login(slug, username, password)
    assert step.status == "two_factor_required"
    assert step.challenge_id is not None
    return step.challenge_id


def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait until ``condition`` holds; fail once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)
