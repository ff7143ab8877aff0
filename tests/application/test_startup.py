"""Several processes starting at once on an empty store: each finds or creates the tables.

``aero-auth serve --workers N`` starts its workers together, and more hosts may
start at once. PostgreSQL refuses concurrent catalog updates of one object
("tuple concurrently updated") when two sessions run the library's CREATE
statements at the same moment, which failed a worker's start.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from interfaces import composition
from interfaces.composition import Store, build_application
from interfaces.settings import Settings


def test_applications_starting_together_on_an_empty_store_all_start(settings: Settings) -> None:
    starting = 6
    barrier = threading.Barrier(starting)
    failures: list[BaseException] = []
    apps: list[Any] = []

    def start() -> None:
        barrier.wait()
        try:
            apps.append(build_application(settings))
        except Exception as e:
            failures.append(e)

    threads = [threading.Thread(target=start) for _ in range(starting)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        assert len(apps) == starting
        apps[0].create_environment("acme", "Acme", "Acme", "alice", "correct horse battery")
        assert apps[-1].environment("acme").display_name == "Acme"
    finally:
        for app in apps:
            app.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_start_gives_up_when_another_holds_the_schema_lock_too_long(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.from_url(settings.database_url)
    monkeypatch.setattr(composition, "SCHEMA_LOCK_TIMEOUT_SECONDS", 1)
    with composition.schema_lock(store):  # another process, creating the tables
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="creating the event store's tables"):
            build_application(settings)
        assert time.monotonic() - started < 10
    build_application(settings).close()
