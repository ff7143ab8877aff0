"""A credential with a long history loads from a snapshot, to the same state as a full replay."""

from __future__ import annotations

from typing import Any

import pytest

from application.clock import FixedClock
from application.service import AeroAuth
from domain.credential import UserCredential
from domain.errors import InvalidCodeError
from tests.application.helpers import BOB, ENV, bob_registered, code_login


def state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_a_user_with_more_than_a_hundred_events_loads_from_a_snapshot(
    app: AeroAuth, clock: FixedClock
) -> None:
    bob_registered(app, clock)
    challenge = code_login(app)
    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, "12345")
    for i in range(100):
        app.change_groups(ENV, BOB, ["finance", f"project-{i % 2}"])
    challenge = code_login(app)  # events after the snapshot, on top of it
    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, "1234567")
    user_id = app.user(ENV, BOB).id

    loaded = app.repository.get(user_id)

    assert app.snapshots is not None
    snapshots = list(app.snapshots.get(user_id))
    assert [s.originator_version for s in snapshots] == [100]
    assert loaded.version > 100
    replayed = None
    for event in app.events.get(user_id):
        replayed = event.mutate(replayed)
    assert isinstance(replayed, UserCredential)
    assert state(loaded) == state(replayed)
    assert loaded.registered and loaded.code_failures == 2 and loaded.recovery_codes


def test_snapshots_are_stored_under_a_stable_topic(app: AeroAuth, clock: FixedClock) -> None:
    bob_registered(app, clock)
    for i in range(100):
        app.change_groups(ENV, BOB, ["finance", f"project-{i % 2}"])
    user_id = app.user(ENV, BOB).id

    assert app.snapshots is not None
    stored = app.snapshots.recorder.select_events(user_id)

    assert [s.topic for s in stored] == ["aero:UserCredential.Snapshot"]
