"""What every AeroAuth command stands on: settings, storage and loading.

``AeroApplication`` is the library's Application as aero-auth configures it:
its transcoder, its repository, its snapshots, and the aggregates loaded by
name. The commands build on it: the login flow in application/login.py, the
rest in application/service.py.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.persistence import (
    JSONTranscoder,
    PersistenceError,
    RecordConflictError,
    Recording,
)
from eventsourcing.utils import get_topic

from application.clock import Clock, SystemClock
from application.passwords import Argon2Hasher
from application.secretbox import SecretBox
from application.transcoding import AeroMapper, FrozensetAsList, OrjsonTranscoder
from domain.credential import SNAPSHOT_INTERVAL, UserCredential
from domain.environment import Environment
from domain.errors import (
    ConflictError,
    EnvironmentNotFoundError,
    InvalidCredentialsError,
    UserNotFoundError,
)
from domain.origin import running_command
from domain.rules import environment_id, user_id
from domain.signals import (
    COMMITTED_BEFORE_CONFLICT,
    CONFLICT_RETRIED,
    CONFLICT_RETRIES_EXHAUSTED,
)
from domain.throttle import CODE_THROTTLE, PASSWORD_THROTTLE, Throttle

logger = logging.getLogger("aero_auth.application")

# The notification position of the last save in this context (request or
# thread): the HTTP layer waits for the read models to reach it before it
# answers an admin write, so reads reflect writes (API.md).
last_saved_position: ContextVar[int | None] = ContextVar("last_saved_position", default=None)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class SecurityPolicy:
    """The throttling and lifetimes of SECURITY.md; each is a setting."""

    password_throttle: Throttle = PASSWORD_THROTTLE
    code_throttle: Throttle = CODE_THROTTLE
    login_ttl: timedelta = timedelta(minutes=5)
    conflict_retries: int = 10


def retry_on_conflict(method: Callable[P, R]) -> Callable[P, R]:
    """Reload and decide again when another writer saved the aggregate first.

    Every attempt runs as one command (one command id on its events), so a save
    that committed although the store reported a conflict is recognised by
    ``AeroApplication._record`` instead of being decided twice. When writers
    keep colliding, :class:`ConflictError` says so (HTTP 409 with Retry-After).
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        app = args[0]
        assert isinstance(app, AeroApplication)
        with running_command():
            for attempt in range(app.security.conflict_retries + 1):
                if attempt:
                    CONFLICT_RETRIED.emit()
                    # Writers that collided once collide again if they retry in step.
                    time.sleep(random.uniform(0, 0.002 * attempt))  # noqa: S311
                try:
                    return method(*args, **kwargs)
                except RecordConflictError:
                    continue
        CONFLICT_RETRIES_EXHAUSTED.emit()
        logger.warning("conflicts exhausted: %s", method.__name__)
        raise ConflictError()

    return wrapper


def apply_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event ``isinstance``
    against a runtime Protocol: on Python 3.11 each such check walks the
    protocol's attributes, and costs more than applying the event."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class AeroRepository(Repository[UUID]):
    """The library's repository, loading with :func:`apply_events` unless told otherwise."""

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = None,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        return super().get(
            aggregate_id,
            version=version,
            projector_func=projector_func or apply_events,
            fastforward_skipping=fastforward_skipping,
            deepcopy_from_cache=deepcopy_from_cache,
        )


class AeroApplication(Application[UUID]):
    """The library's Application with aero-auth's storage, and its aggregates by name."""

    name = "AeroAuth"
    # The library's own settings, as its examples name an orjson transcoder; the
    # operator's environment (TRANSCODER_TOPIC, MAPPER_TOPIC) or an explicit env
    # still wins.
    env = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "MAPPER_TOPIC": get_topic(AeroMapper),
    }
    snapshotting_intervals = {UserCredential: SNAPSHOT_INTERVAL}
    snapshotting_projectors = {UserCredential: apply_events}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock | None = None,
        hasher: Argon2Hasher | None = None,
        secret_box: SecretBox | None = None,
        security: SecurityPolicy | None = None,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        self.hasher = hasher or Argon2Hasher()
        if secret_box is None:
            raise ValueError("AeroAuth needs a SecretBox: keys come from configuration")
        self.secret_box = secret_box
        self.security = security or SecurityPolicy()

    def construct_repository(self) -> Repository[UUID]:
        # The library's repository as the library configures it (cache, fast-forward,
        # copies), with aero-auth's default way of applying events.
        library = super().construct_repository()
        repository = AeroRepository(
            library.event_store,
            snapshot_store=library.snapshot_store,
            fastforward=library.fastforward,
            fastforward_skipping=library.fastforward_skipping,
            deepcopy_from_cache=library.deepcopy_from_cache,
        )
        repository.cache = library.cache
        return repository

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        try:
            return super()._record(processing_event)
        except RecordConflictError:
            if not self._already_recorded(processing_event.events):
                raise
        # The store reported a conflict with these very events: the commit went
        # through and its acknowledgement was lost (the library retries an insert
        # after an OperationalError, and the retry collides with its own rows).
        # The save succeeded; deciding again would record the command twice.
        COMMITTED_BEFORE_CONFLICT.emit()
        logger.warning("save committed before the store reported a conflict; not repeated")
        if self.repository.cache and not self.repository.fastforward:
            for aggregate_id, aggregate in processing_event.aggregates.items():
                self.repository.cache.put(aggregate_id, aggregate)
        # The exact position is unknown; the latest one includes it, which is what
        # reads-reflect-writes waits for.
        last_saved_position.set(self.recorder.max_notification_id())
        return []

    def _already_recorded(self, events: Iterable[Any]) -> bool:
        """Whether the store holds, at each aggregate's first new version, the event
        this command saved there (the same command id)."""
        first: dict[UUID, Any] = {}
        for event in events:
            first.setdefault(event.originator_id, event)
        if not first:
            return False
        for originator_id, event in first.items():
            if event.command_id is None:
                return False
            version = event.originator_version
            stored = list(self.events.get(originator_id, gt=version - 1, lte=version))
            if not stored or not _same_event(stored[0], event):
                return False
        return True

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # Taken after the events committed, and only to load faster: a login that
        # succeeded (its code now used up) must not answer 500 because its
        # snapshot could not be written. The next save at an interval tries again.
        try:
            super()._take_snapshots(processing_event)
        except PersistenceError as e:
            logger.warning("snapshot not written, events saved: %s: %s", type(e).__name__, e)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if recordings:
            last_saved_position.set(recordings[-1].notification.id)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(FrozensetAsList())

    # ----- loading -----

    def environment(self, slug: str) -> Environment:
        try:
            environment: Environment = self.repository.get(environment_id(slug))
        except AggregateNotFoundError:
            raise EnvironmentNotFoundError(f"no environment {slug!r}") from None
        return environment

    def user(self, slug: str, username: str) -> UserCredential:
        self.environment(slug)
        return self._user(slug, username)

    def _user(self, slug: str, username: str) -> UserCredential:
        try:
            user: UserCredential = self.repository.get(user_id(slug, username))
        except AggregateNotFoundError:
            raise UserNotFoundError(f"no user {username!r} in environment {slug!r}") from None
        return user

    def user_by_id(self, user_uuid: UUID) -> UserCredential:
        try:
            user: UserCredential = self.repository.get(user_uuid)
        except AggregateNotFoundError:
            raise UserNotFoundError("no such user") from None
        return user

    def requiring_rule(self, user: UserCredential) -> str | None:
        return self.environment(user.environment).requiring_rule(user.groups)

    # ----- the password, for logins and for changing it -----

    def _check_password_hash(self, user: UserCredential, password: str) -> PasswordCheck:
        """The expensive part of a password step (argon2), done once per request.

        Verified against the real hash even while the step is locked: the same
        cost either way, and the lock decides the answer, not this result.
        """
        if not user.has_password:
            # Provisioned by the identity provider: refused as a wrong password, in
            # the time a wrong password takes.
            self.hasher.verify_dummy(password)
            return PasswordCheck(user.password_hash, False)
        matches = self.hasher.verify(user.password_hash, password)
        return PasswordCheck(user.password_hash, matches)

    def _decide_password_step(
        self, user: UserCredential, password: str, check: PasswordCheck, now: datetime
    ) -> PasswordCheck:
        """Record a failed or throttled attempt and raise, from a check made before.

        Runs on every retry with a freshly loaded ``user``; only a password changed
        since the check is hashed again. Returns the check that holds for ``user``.
        """
        if check.password_hash != user.password_hash:
            check = self._check_password_hash(user, password)
        if user.password_step_locked_until(now) is not None:
            user.throttle_password_step(now)
        elif not check.matches:
            user.fail_password_step(self.security.password_throttle, now)
        else:
            return check
        self.save(user)
        raise InvalidCredentialsError()


def _same_event(stored: Any, pending: Any) -> bool:
    # The command id tells this command's events from others'; type and time guard
    # against two commands sharing a context (one application calling another).
    return (
        type(stored) is type(pending)
        and stored.command_id == pending.command_id
        and stored.timestamp == pending.timestamp
    )


@dataclass(frozen=True)
class PasswordCheck:
    """A password verified against ``password_hash``: valid while the user keeps that hash."""

    password_hash: str
    matches: bool
