"""Seeding for the benchmarks: environments, registered users and their histories.

Seeding writes through the aggregates and ``AeroAuth.save`` in large batches:
the same events the HTTP API would record, without paying argon2id for each
user (every seeded user shares one password hash, computed once with the
configured parameters, so verifying it costs what any login costs).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from _stores import ENV, PASSWORD, Store, settings

SEED_BATCH = 500  # aggregates per save


def totp_secret(username: str) -> str:
    """Each seeded user's authenticator secret, derivable by the load generator (bench only)."""
    digest = hashlib.sha256(f"aero-bench:{username}".encode()).digest()
    return base64.b32encode(digest[:20]).decode()


def username(i: int) -> str:
    return f"u{i:07d}"


@dataclass
class Seeder:
    """Writes environments, users and logins through AeroAuth in large batches."""

    store: Store
    clock: Any = None
    app: Any = None
    password_hash: str = ""
    users: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> Seeder:
        from interfaces.composition import build_application

        self.app = build_application(settings(self.store), clock=self.clock)
        return self

    def __exit__(self, *exc: object) -> None:
        self.app.close()

    def environment(self) -> None:
        self.app.create_environment(ENV, "Bench", "BizzStream Aero", "admin", PASSWORD)
        self.password_hash = self.app.hasher.hash(PASSWORD)

    def registered_users(self, start: int, count: int, keep: bool = True) -> list[str]:
        """Users with an authenticator registered two time steps ago (so any code now is new)."""
        from application.login import challenge_key
        from domain.credential import UserCredential

        names = []
        pending = []
        now = self.app.clock.now()
        step = int(now.timestamp()) // 30 - 2
        for i in range(start, start + count):
            name = username(i)
            user = UserCredential.create(ENV, name, self.password_hash, (), (), now)
            challenge = challenge_key(f"seed-{name}")
            user.pass_password_step(challenge, True, now + timedelta(minutes=5), now)
            encrypted = self.app.secret_box.encrypt(totp_secret(name), context=str(user.id))
            user.start_registration(challenge, encrypted, now)
            user.register_authenticator(challenge, step, now)
            user.complete_login("registration", now)
            pending.append(user)
            names.append(name)
            if keep:
                self.users[name] = user
            if len(pending) >= SEED_BATCH:
                self.app.save(*pending)
                pending = []
        if pending:
            self.app.save(*pending)
        return names

    def history(self, name: str, logins: int) -> None:
        """``logins`` past password-only-like logins (2 events each) for a kept user."""
        from application.login import challenge_key

        user = self.users[name]
        now = self.app.clock.now()
        for i in range(logins):
            challenge = challenge_key(f"history-{name}-{i}")
            user.pass_password_step(challenge, True, now + timedelta(minutes=5), now)
            user.complete_login("password", now)  # stands in for a completed code step
            if (i + 1) % SEED_BATCH == 0:
                self.app.save(user)
        self.app.save(user)

    def filler(self, events: int, users: Sequence[str]) -> None:
        """About ``events`` more events, spread over kept users, in large batches."""
        from application.login import challenge_key

        now = self.app.clock.now()
        written, batch, i = 0, 0, 0
        touched: dict[str, Any] = {}
        while written < events:
            name = users[i % len(users)]
            user = self.users[name]
            user.pass_password_step(
                challenge_key(f"fill-{i}"), True, now + timedelta(minutes=5), now
            )
            touched[name] = user
            written += 1
            batch += 1
            i += 1
            if batch >= 5000:
                self.app.save(*touched.values())
                touched, batch = {}, 0
        if touched:
            self.app.save(*touched.values())

    def login_tokens(self, names: Sequence[str]) -> list[tuple[str, str]]:
        """A pending login (password step passed) and its login token for each user."""
        import secrets

        from application.login import challenge_key
        from domain.credential import TWO_FACTOR
        from interfaces.signing_keys import load_signing_key
        from interfaces.tokens import TokenService

        tokens = TokenService(load_signing_key(settings(self.store)), self.app.clock,
                              timedelta(hours=1))  # fmt: skip
        now = self.app.clock.now()
        expires = now + timedelta(minutes=5)
        out, pending = [], []
        for name in names:
            user = self.users[name]
            challenge = secrets.token_urlsafe(16)
            user.pass_password_step(challenge_key(challenge), True, expires, now)
            pending.append(user)
            out.append((name, tokens.issue_login(user, challenge, TWO_FACTOR, expires).token))
            if len(pending) >= SEED_BATCH:
                self.app.save(*pending)
                pending = []
        if pending:
            self.app.save(*pending)
        return out
