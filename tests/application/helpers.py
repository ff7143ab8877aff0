"""Steps the application tests share: reading new events, a full registration, racing saves.

Helpers rather than fixtures, so a test says in its own body which steps it takes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from application.clock import FixedClock
from application.service import AeroAuth
from domain.totp import PERIOD
from tests import support
from tests.support import ADMIN, ADMIN_PASSWORD, PASSWORDS, Enrolled

# Re-exported: the application tests import these from here.
from tests.support import ENV as ENV
from tests.support import ISSUER as ISSUER
from tests.support import code_at as code_at

ALICE = ADMIN
ALICE_PASSWORD = ADMIN_PASSWORD
BOB = "bob"
BOB_PASSWORD = PASSWORDS[BOB]
CAROL = "carol"
CAROL_PASSWORD = PASSWORDS[CAROL]


def position(app: AeroAuth) -> int:
    """The notification id of the last stored event: compare before and after a command."""
    return app.recorder.max_notification_id() or 0


def events_since(app: AeroAuth, after: int) -> list[Any]:
    """Every domain event stored after the position ``after``, oldest first."""
    notifications = app.recorder.select_notifications(start=after + 1, limit=100_000)
    return [app.mapper.to_domain_event(n) for n in notifications]


def types(events: Sequence[Any]) -> list[type]:
    return [type(e) for e in events]


def with_environment(app: AeroAuth) -> AeroAuth:
    """Environment acme with its admin alice, as the operator creates it."""
    app.create_environment(ENV, "Acme", ISSUER, ALICE, ALICE_PASSWORD)
    return app


def register(
    app: AeroAuth, clock: FixedClock, username: str = BOB, password: str = BOB_PASSWORD
) -> Enrolled:
    """A first login under a requirement: scan, confirm with the app's code, get recovery codes.

    Leaves the clock one step later, so the next code the app shows is not a replay.
    """
    enrolled = support.register(app, clock, username, password)
    clock.advance(seconds=PERIOD)
    return enrolled


def bob_registered(app: AeroAuth, clock: FixedClock) -> Enrolled:
    """acme requires 2FA for finance; bob (finance) has registered an authenticator."""
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"])
    app.set_policy(ENV, True, ["finance"])
    return register(app, clock)


def code_login(app: AeroAuth, username: str = BOB, password: str = BOB_PASSWORD) -> str:
    """The password step of a user with an authenticator: the challenge for the code step."""
    step = app.start_login(ENV, username, password)
    assert step.status == "two_factor_required", step.status
    assert step.challenge_id is not None
    return step.challenge_id


class CountingHasher:
    """The real Argon2Hasher, counting the verifications it is asked for (a fake, not a mock)."""

    def __init__(self, inner: Any = None) -> None:
        from application.passwords import Argon2Hasher

        self.inner = inner or Argon2Hasher()
        self.verifications = 0
        self.dummy_verifications = 0

    def hash(self, password: str) -> str:
        return str(self.inner.hash(password))

    def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        return bool(self.inner.verify(password_hash, password))

    def verify_dummy(self, password: str) -> None:
        self.dummy_verifications += 1
        self.inner.verify_dummy(password)

    def needs_rehash(self, password_hash: str) -> bool:
        return bool(self.inner.needs_rehash(password_hash))

    @property
    def argon2_runs(self) -> int:
        return self.verifications + self.dummy_verifications


class CountingBox:
    """The real SecretBox, counting decryptions: proves a code was refused before any check."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.decryptions = 0

    def encrypt(self, plaintext: str, context: str) -> str:
        return str(self.inner.encrypt(plaintext, context))

    def decrypt(self, token: str, context: str) -> str:
        self.decryptions += 1
        return str(self.inner.decrypt(token, context))


class SavesTogether(AeroAuth):
    """Holds each thread's first save until the other thread is ready to save too.

    Both threads have then decided on the same stored state before either
    saves: the races of SECURITY.md 5 and of creating the same user, made certain.
    """

    name = "AeroAuth"  # the library names tables after the application: keep AeroAuth's
    barrier: threading.Barrier

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        local = self.__dict__.setdefault("_local", threading.local())
        if not getattr(local, "waited", False):
            local.waited = True
            self.barrier.wait(timeout=20)
        return super().save(*objs, **kwargs)


def race(*calls: Any) -> list[Any]:
    """Run each call in its own thread; each result is a return value or an exception."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
