"""A command retried after a version conflict, and one whose retries ran out, are signalled
(the HTTP layer counts them as metrics)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eventsourcing.persistence import RecordConflictError

from application.base import retry_on_conflict
from application.service import AeroAuth
from domain.errors import ConflictError
from domain.signals import CONFLICT_RETRIED, CONFLICT_RETRIES_EXHAUSTED, Signal


@pytest.fixture
def database(sqlite_database: object) -> object:
    return sqlite_database


@pytest.fixture
def counted() -> Iterator[dict[str, int]]:
    counts = {"retried": 0, "exhausted": 0}
    observers: list[tuple[Signal, object]] = []
    for signal, name in ((CONFLICT_RETRIED, "retried"), (CONFLICT_RETRIES_EXHAUSTED, "exhausted")):

        def observe(name: str = name) -> None:
            counts[name] += 1

        signal.connect(observe)
        observers.append((signal, observe))
    yield counts
    for signal, observer in observers:
        signal.disconnect(observer)  # type: ignore[arg-type]


def conflicting(times: int):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    @retry_on_conflict
    def command(app: AeroAuth) -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise RecordConflictError("another writer saved first")
        return "saved"

    return command


def test_each_retry_after_a_conflict_is_signalled(app: AeroAuth, counted: dict[str, int]) -> None:
    assert conflicting(3)(app) == "saved"
    assert counted == {"retried": 3, "exhausted": 0}


def test_a_conflict_after_the_last_retry_is_signalled_as_exhausted(
    app: AeroAuth, counted: dict[str, int]
) -> None:
    retries = app.security.conflict_retries
    with pytest.raises(ConflictError):
        conflicting(retries + 1)(app)
    assert counted == {"retried": retries, "exhausted": 1}
