"""Commands under contention and under a store that acknowledges a commit too late.

A conflicting writer makes a command reload and decide again, but the password
is hashed once per request however often that happens. A save that committed
although the store answered with an error (the library retries an insert after
an OperationalError, and the retry collides with its own rows) is recognised by
the command id its events carry: the command is not decided twice.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from eventsourcing.utils import retry

from application.clock import FixedClock
from application.service import AeroAuth, SecurityPolicy, last_saved_position
from domain.credential import UserCredential
from domain.environment import Environment
from domain.errors import ConflictError, InvalidCredentialsError
from tests.application.conftest import BuildApp
from tests.application.helpers import (
    BOB,
    BOB_PASSWORD,
    ENV,
    CountingHasher,
    bob_registered,
    code_at,
    code_login,
    events_since,
    position,
    types,
    with_environment,
)

WRONG = "not bob's password"


class ThreadSafeCountingHasher(CountingHasher):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def verify(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.verifications += 1
        return bool(self.inner.verify(password_hash, password))

    def verify_dummy(self, password: str) -> None:
        with self._lock:
            self.dummy_verifications += 1
        self.inner.verify_dummy(password)


def other_writer_first(
    monkeypatch: pytest.MonkeyPatch, app: AeroAuth, write: Callable[[], None], times: int = 1
) -> None:
    """The next ``times`` saves of ``app`` find that ``write`` (another process, so in a
    context of its own) saved first."""
    insert = app.recorder.insert_events
    left = [times]

    def losing(*args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            contextvars.Context().run(write)
        return insert(*args, **kwargs)

    monkeypatch.setattr(app.recorder, "insert_events", losing)


def commit_acknowledged_late(monkeypatch: pytest.MonkeyPatch, app: AeroAuth) -> list[int]:
    """The next save commits, then the store reports an OperationalError; the library's
    retry of the insert (as on PostgreSQL) then collides with the rows just committed.
    Returns a list that counts the faults injected."""
    insert = app.recorder.insert_events
    injected: list[int] = []

    @retry((OperationalError,), max_attempts=3)
    def late(*args: Any, **kwargs: Any) -> Any:
        result = insert(*args, **kwargs)
        if not injected:
            injected.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(app.recorder, "insert_events", late)
    return injected


# ----- the password step under contention -----


def test_a_password_step_that_loses_a_race_hashes_once_and_decides_again(
    build_app: BuildApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = CountingHasher()
    app = build_app(hasher=hasher)
    other = build_app()
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"])
    other_writer_first(monkeypatch, app, lambda: other.change_groups(ENV, BOB, ["sales"]))
    hasher.verifications = 0

    step = app.start_login(ENV, BOB, BOB_PASSWORD)

    assert step.status == "authenticated"
    assert hasher.verifications == 1
    assert app.user(ENV, BOB).groups == frozenset({"sales"})


def test_a_wrong_password_that_loses_a_race_is_counted_once(
    build_app: BuildApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = CountingHasher()
    app = build_app(hasher=hasher)
    other = build_app()
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)
    other_writer_first(monkeypatch, app, lambda: other.change_groups(ENV, BOB, ["sales"]))
    hasher.verifications = 0
    before = position(app)

    with pytest.raises(InvalidCredentialsError):
        app.start_login(ENV, BOB, WRONG)

    assert hasher.verifications == 1
    assert types(events_since(app, before)) == [
        UserCredential.GroupsChanged,
        UserCredential.PasswordStepFailed,
    ]


def test_parallel_wrong_passwords_hash_once_each_and_lock_after_exactly_ten(
    build_app: BuildApp,
) -> None:
    hasher = ThreadSafeCountingHasher()
    app = build_app(hasher=hasher, security=SecurityPolicy(conflict_retries=50))
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)
    hasher.verifications = 0
    before = position(app)
    barrier = threading.Barrier(12)

    def attempt(_: int) -> str:
        barrier.wait()
        try:
            app.start_login(ENV, BOB, WRONG)
        except InvalidCredentialsError:
            return "refused"
        return "accepted"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(attempt, range(12)))

    assert outcomes == ["refused"] * 12
    assert hasher.verifications == 12
    new = types(events_since(app, before))
    assert new.count(UserCredential.PasswordStepFailed) == 10
    assert new.count(UserCredential.PasswordStepLocked) == 1
    assert new.count(UserCredential.PasswordStepThrottled) == 2
    assert app.user(ENV, BOB).password_step_locked_until(app.clock.now()) is not None


def test_a_password_step_that_keeps_losing_is_refused_like_any_failure(
    build_app: BuildApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(security=SecurityPolicy(conflict_retries=2))
    other = build_app()
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)
    groups = iter(f"g{i}" for i in range(100))
    other_writer_first(
        monkeypatch, app, lambda: other.change_groups(ENV, BOB, [next(groups)]), times=100
    )

    with pytest.raises(InvalidCredentialsError):
        app.start_login(ENV, BOB, BOB_PASSWORD)
    with pytest.raises(ConflictError) as raised:
        app.change_roles(ENV, BOB, ["auditor"])
    assert raised.value.retry_after >= 1


# ----- a commit acknowledged late -----


def test_a_policy_change_committed_before_the_store_failed_is_stored_once(
    app: AeroAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_environment(app)
    before = position(app)
    injected = commit_acknowledged_late(monkeypatch, app)

    environment = app.set_policy(ENV, True, ["finance"])

    assert injected == [1]
    assert environment.require_2fa and environment.selected_groups == frozenset({"finance"})
    assert types(events_since(app, before)) == [
        Environment.TwoFactorRequirementChanged,
        Environment.GroupsSelected,
    ]
    # What the HTTP layer waits for before it answers, so that reads reflect the write.
    assert last_saved_position.get() == position(app)


def test_a_code_accepted_before_the_store_failed_completes_the_login(
    app: AeroAuth, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolled = bob_registered(app, clock)
    challenge = code_login(app)
    before = position(app)
    commit_acknowledged_late(monkeypatch, app)

    completed = app.verify_code(ENV, BOB, challenge, code_at(enrolled.secret, clock.now()))

    assert completed.user.username == BOB
    assert types(events_since(app, before)) == [
        UserCredential.CodeAccepted,
        UserCredential.LoginSucceeded,
    ]
    assert app.user(ENV, BOB).code_failures == 0


def test_a_user_created_before_the_store_failed_is_created_not_refused_as_existing(
    app: AeroAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_environment(app)
    before = position(app)
    commit_acknowledged_late(monkeypatch, app)

    user = app.create_user(ENV, BOB, BOB_PASSWORD, groups=["finance"])

    assert user.username == BOB
    assert types(events_since(app, before)) == [UserCredential.Created]
    assert app.start_login(ENV, BOB, BOB_PASSWORD).status == "authenticated"


def test_a_real_conflict_is_still_decided_again(
    build_app: BuildApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app()
    other = build_app()
    with_environment(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)
    other_writer_first(monkeypatch, app, lambda: other.change_groups(ENV, BOB, ["sales"]))
    before = position(app)

    app.change_roles(ENV, BOB, ["auditor"])

    user = app.user(ENV, BOB)
    assert user.groups == frozenset({"sales"}) and user.roles == frozenset({"auditor"})
    assert types(events_since(app, before)) == [
        UserCredential.GroupsChanged,
        UserCredential.RolesChanged,
    ]


def test_events_carry_the_command_id_and_events_stored_without_one_still_load(
    app: AeroAuth,
) -> None:
    with_environment(app)
    before = position(app)
    app.create_user(ENV, BOB, BOB_PASSWORD)
    app.change_groups(ENV, BOB, ["finance"])
    created, changed = events_since(app, before)
    assert created.command_id and changed.command_id
    assert created.command_id != changed.command_id

    stored = app.mapper.to_stored_event(changed)
    state = app.mapper.transcoder.decode(stored.state)
    del state["command_id"]
    as_before = type(stored)(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=app.mapper.transcoder.encode(state),
    )
    loaded = app.mapper.to_domain_event(as_before)

    assert loaded.command_id is None
    created_only = app.repository.get(created.originator_id, version=created.originator_version)
    assert loaded.mutate(created_only).groups == frozenset({"finance"})
