"""A credential with a long history loads from a snapshot, to the same state as a full replay."""

from __future__ import annotations

import logging
from typing import Any

import eventsourcing.application
import pytest
from eventsourcing.persistence import OperationalError

from application.clock import FixedClock
from application.service import AeroAuth, last_saved_position
from domain.credential import SNAPSHOT_INTERVAL, UserCredential
from domain.errors import InvalidCodeError
from tests.application.helpers import BOB, ENV, bob_registered, code_login


def state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_a_user_with_a_long_history_loads_from_its_latest_snapshot(
    app: AeroAuth, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob_registered(app, clock)
    challenge = code_login(app)
    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, "12345")
    for i in range(5 * SNAPSHOT_INTERVAL):
        app.change_groups(ENV, BOB, ["finance", f"project-{i % 2}"])
    challenge = code_login(app)  # events after the snapshot, on top of it
    with pytest.raises(InvalidCodeError):
        app.verify_code(ENV, BOB, challenge, "1234567")
    user_id = app.user(ENV, BOB).id
    version = app.repository.get(user_id).version
    assert version % SNAPSHOT_INTERVAL != 0
    latest = version - version % SNAPSHOT_INTERVAL
    read = []
    events_get = app.events.get

    def counting(*args: Any, **kwargs: Any) -> Any:
        for event in events_get(*args, **kwargs):
            read.append(event.originator_version)
            yield event

    monkeypatch.setattr(app.repository, "cache", None)  # from the store, not this process
    monkeypatch.setattr(app.events, "get", counting)
    loaded = app.user_by_id(user_id)  # as every command loads a user

    assert app.snapshots is not None
    snapshots = list(app.snapshots.get(user_id))
    assert [s.originator_version for s in snapshots] == list(
        range(SNAPSHOT_INTERVAL, version + 1, SNAPSHOT_INTERVAL)
    )
    assert read == list(range(latest + 1, version + 1))
    assert loaded.version == version
    replayed = None
    for event in app.events.get(user_id):
        replayed = event.mutate(replayed)
    assert isinstance(replayed, UserCredential)
    assert state(loaded) == state(replayed)
    assert loaded.registered and loaded.code_failures == 2 and loaded.recovery_codes


def test_snapshots_are_stored_under_a_stable_topic(app: AeroAuth, clock: FixedClock) -> None:
    bob_registered(app, clock)
    for i in range(SNAPSHOT_INTERVAL):
        app.change_groups(ENV, BOB, ["finance", f"project-{i % 2}"])
    user_id = app.user(ENV, BOB).id

    assert app.snapshots is not None
    stored = app.snapshots.recorder.select_events(user_id)

    assert [s.topic for s in stored] == ["aero:UserCredential.Snapshot"]


def test_a_snapshot_that_cannot_be_written_does_not_fail_the_command(
    app: AeroAuth,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bob_registered(app, clock)
    user_id = app.user(ENV, BOB).id
    assert app.snapshots is not None

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("disk I/O error")

    monkeypatch.setattr(app.snapshots, "put", refuse)
    with caplog.at_level(logging.WARNING, logger="aero_auth.application"):
        for i in range(SNAPSHOT_INTERVAL):  # one of these saves reaches a snapshot's version
            app.change_groups(ENV, BOB, ["finance", f"project-{i % 2}"])

    assert app.user(ENV, BOB).version > SNAPSHOT_INTERVAL
    assert list(app.snapshots.get(user_id)) == []
    assert last_saved_position.get() == app.recorder.max_notification_id()
    assert "snapshot not written, events saved: OperationalError: disk I/O error" in caplog.text


def test_loads_and_snapshots_skip_the_librarys_per_event_protocol_check(
    app: AeroAuth, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # project_aggregate checks each event against a runtime Protocol, which on
    # Python 3.11 costs more than applying the event (docs/benchmarks.md, change 14).
    bob_registered(app, clock)
    checked: list[Any] = []

    class Counting(type):
        def __instancecheck__(cls, instance: Any) -> bool:
            checked.append(instance)
            return True

    monkeypatch.setattr(
        eventsourcing.application, "CanMutateProtocol", Counting("CanMutateProtocol", (), {})
    )
    monkeypatch.setattr(app.repository, "cache", None)  # every load from the store
    for i in range(SNAPSHOT_INTERVAL):  # loads, and a snapshot on the way
        app.change_groups(ENV, BOB, ["finance", f"project-{i % 2}"])
    app.user(ENV, BOB)

    assert app.snapshots is not None and list(app.snapshots.get(app.user(ENV, BOB).id))
    assert checked == []
