"""Occurrences that outer layers may count, without the inner ones knowing how.

The domain and the application emit; interfaces/ connects its metrics. Plain
callables: domain/ imports only the standard library, eventsourcing and pyotp.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Signal:
    """One kind of occurrence; each emit calls every connected observer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._observers: tuple[Callable[[], None], ...] = ()

    def connect(self, observer: Callable[[], None]) -> None:
        with self._lock:
            self._observers = (*self._observers, observer)

    def disconnect(self, observer: Callable[[], None]) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def emit(self) -> None:
        for observer in self._observers:
            observer()


# An event stamped with the aggregate's previous time, not the clock's (AeroAggregate._trigger).
TIME_HELD_BACK = Signal("time_held_back")
# A command decided again after another writer saved the aggregate first (retry_on_conflict).
CONFLICT_RETRIED = Signal("conflict_retried")
# A command that still met a conflict after its last retry.
CONFLICT_RETRIES_EXHAUSTED = Signal("conflict_retries_exhausted")
# A save the store reported as a conflict that had in fact committed (a late
# acknowledgement): the command's own events were found, not decided again.
COMMITTED_BEFORE_CONFLICT = Signal("committed_before_conflict")
