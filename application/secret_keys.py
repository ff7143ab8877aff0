"""Rotating the key of the TOTP secrets: re-encrypt each user's stored secrets under the
current key, and count which keys the stored secrets need.

A rotation (docs/operations.md) adds a new key as the current one, re-encrypts
every stored secret under it (``aero-auth keys rotate``), and only then drops
the old key. Each re-encryption is a new event on the user's credential; the
events that hold the old ciphertexts stay as they were, so an old key still
decrypts history, but nothing the service uses any more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from application.base import AeroApplication, retry_on_conflict
from application.secretbox import SecretBoxError
from domain.credential import (
    ALREADY_CURRENT,
    NONE_STORED,
    PENDING,
    REENCRYPTED,
    REGISTERED,
    SECRET_TOPICS,
    Reencryption,
    UserCredential,
    secret_key_id,
)
from domain.environment import Environment
from domain.errors import ConflictError

_PAGE = 1000


class SecretKeyRotation(AeroApplication):
    """The command that re-encrypts one user's secrets; AeroAuth has it."""

    @retry_on_conflict
    def reencrypt_secrets(self, slug: str, username: str) -> Reencryption:
        """Re-encrypt the user's registered and pending secrets that are under another
        key than the current one. The credential decides which; a login that saves
        first makes this reload and decide again, like any command.

        SecretBoxError when a secret's key is not configured or does not decrypt it.
        """
        user = self._user(slug, username)
        current = self.secret_box.current
        outcome = user.reencrypt_secrets(
            current, partial(self._reencrypted, str(user.id)), self.clock.now()
        )
        if outcome == REENCRYPTED:
            self.save(user)
        return outcome

    def _reencrypted(self, context: str, encrypted_secret: str) -> str:
        # The plaintext lives only in this expression: never stored, never returned.
        box = self.secret_box
        return box.encrypt(box.decrypt(encrypted_secret, context), context)


# ----- which users and environments there are, from the event store -----


def _events(app: AeroApplication, topics: list[str]) -> Iterator[tuple[int, Any]]:
    """The stored events of ``topics``, oldest first, with their positions."""
    start = 1
    while True:
        page = app.recorder.select_notifications(start, _PAGE, topics=topics)
        for notification in page:
            yield notification.id, app.mapper.to_domain_event(notification)
        if len(page) < _PAGE:
            return
        start = page[-1].id + 1


def environment_slugs(app: AeroApplication) -> list[str]:
    """Every environment of the store, by slug."""
    return sorted(event.slug for _, event in _events(app, [Environment.Created.TOPIC]))


def usernames_by_environment(app: AeroApplication) -> dict[str, list[str]]:
    """Every user of every environment, as created, in the order they were created.

    From the users' Created events, not from the user directory: a view may lag
    behind the store, and a rotation must not miss a user created a moment ago.
    """
    users: dict[str, list[str]] = {}
    for _, event in _events(app, [UserCredential.Created.TOPIC]):
        users.setdefault(event.environment, []).append(event.username)
    return users


# ----- a rotation, environment by environment -----


@dataclass
class RotationReport:
    """What ``aero-auth keys rotate`` did in one environment."""

    environment: str
    key_id: str
    reencrypted: int = 0
    already_current: int = 0
    without_secret: int = 0
    # Users whose secrets stayed as they were, and why: a key that is not configured
    # or does not decrypt, or writers that kept colliding (run the rotation again).
    not_rotated: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: Reencryption) -> None:
        if outcome == REENCRYPTED:
            self.reencrypted += 1
        elif outcome == ALREADY_CURRENT:
            self.already_current += 1
        else:
            assert outcome == NONE_STORED
            self.without_secret += 1


def rotate_environment(app: SecretKeyRotation, slug: str, usernames: list[str]) -> RotationReport:
    """Re-encrypt the secrets of ``usernames`` (the environment's users) under the current
    key, one command per user: an interruption loses no more than the user it was at,
    and a second run finds the users done so far already current."""
    report = RotationReport(slug, app.secret_box.current)
    for username in usernames:
        try:
            report.count(app.reencrypt_secrets(slug, username))
        except SecretBoxError as e:
            report.not_rotated[username] = str(e)
        except ConflictError:
            report.not_rotated[username] = "other writers kept saving first; run it again"
    return report


# ----- which keys the stored secrets need -----


@dataclass(frozen=True)
class StoredSecret:
    """One encrypted secret a user holds now (not one the history holds)."""

    user_id: UUID
    stage: str  # registered or pending
    encrypted_secret: str

    @property
    def key_id(self) -> str:
        return secret_key_id(self.encrypted_secret)


def stored_secrets(app: AeroApplication) -> list[StoredSecret]:
    """Every encrypted secret the users hold now, oldest stored first.

    The events that change a credential's secrets (``SECRET_TOPICS``, selected by
    topic in the database) applied with their own ``apply`` to a credential that
    holds nothing else: the same state as loading every user, in one pass over
    those events, which the start can afford for every user.
    """
    holders: dict[UUID, UserCredential] = {}
    stored_at: dict[UUID, int] = {}
    for position, event in _events(app, list(SECRET_TOPICS)):
        holder = holders.setdefault(event.originator_id, UserCredential.secrets_only())
        event.apply(holder)
        stored_at[event.originator_id] = position
    return [
        StoredSecret(user_id, stage, encrypted)
        for user_id in sorted(holders, key=stored_at.__getitem__)
        for stage, encrypted in holders[user_id].stored_secrets().items()
    ]


@dataclass(frozen=True)
class KeyUse:
    """How many stored secrets one key id has, and whether the configuration has it."""

    key_id: str
    configured: bool
    current: bool
    registered: int
    pending: int
    # Of this key id's secrets, how many the configured key does not decrypt (a key
    # replaced under the same id); all of them when the id is not configured.
    undecryptable: int

    @property
    def secrets(self) -> int:
        return self.registered + self.pending


def key_uses(app: AeroApplication) -> list[KeyUse]:
    """Each configured key id (the current one first, as configured), then each key id
    the stored secrets use that is not configured. Every stored secret is decrypted
    once, to find a key replaced under its id."""
    box = app.secret_box
    by_key: dict[str, list[StoredSecret]] = {key_id: [] for key_id in box.ordered_key_ids}
    for stored in stored_secrets(app):
        by_key.setdefault(stored.key_id, []).append(stored)
    uses = []
    for key_id, secrets in by_key.items():
        configured = key_id in box.key_ids
        undecryptable = 0
        for stored in secrets:
            try:
                box.decrypt(stored.encrypted_secret, str(stored.user_id))
            except SecretBoxError:
                undecryptable += 1
        uses.append(
            KeyUse(
                key_id=key_id,
                configured=configured,
                current=key_id == box.current,
                registered=sum(1 for s in secrets if s.stage == REGISTERED),
                pending=sum(1 for s in secrets if s.stage == PENDING),
                undecryptable=undecryptable,
            )
        )
    return uses
