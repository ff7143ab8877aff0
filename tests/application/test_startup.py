"""Several processes starting at once on an empty store: each finds or creates the tables.

``aero-auth serve --workers N`` starts its workers together, and more hosts may
start at once. PostgreSQL refuses concurrent catalog updates of one object
("tuple concurrently updated") when two sessions run the library's CREATE
statements at the same moment, which failed a worker's start.
"""

from __future__ import annotations

import threading
from typing import Any

from interfaces.composition import build_application
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
