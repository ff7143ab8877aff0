"""``/readyz``'s judgement: the store accepts a write, every view is projected and current.

Each check runs on a thread of its own with a deadline, so the probe answers in
time even while the database hangs, and its result is kept for a moment, so a
burst of probes (several platforms, several workers) does not hammer the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from math import inf
from time import monotonic
from typing import Generic, TypeVar

from interfaces.http.observability import Metrics, logger
from projections.api import ReadModels, ViewStatus

T = TypeVar("T")

# /readyz answers within a second: both checks run at once, each within this.
CHECK_DEADLINE_SECONDS = 0.8
# How long one result serves later probes.
RESULT_TTL_SECONDS = 2.0


class TimedOut(Exception):
    pass


class CachedCheck(Generic[T]):
    """``check`` run on a daemon thread, awaited up to a deadline, its outcome kept ``ttl``.

    A check that hangs keeps its thread; later calls wait on that same run instead
    of starting another one behind it.
    """

    def __init__(self, check: Callable[[], T], *, deadline: float, ttl: float) -> None:
        self._check = check
        self._deadline = deadline
        self._ttl = ttl
        self._lock = threading.Lock()
        self._outcome: T | BaseException | None = None
        self._at = -inf
        self._running: threading.Event | None = None

    def get(self) -> T:
        """The outcome, fresh or at most ``ttl`` old; raises what the check raised, or
        TimedOut."""
        with self._lock:
            if monotonic() - self._at < self._ttl:
                return self._unwrap(self._outcome)
            if self._running is None:
                self._running = threading.Event()
                threading.Thread(
                    target=self._run, args=(self._running,), name="aero-readiness", daemon=True
                ).start()
            running = self._running
        if not running.wait(self._deadline):
            raise TimedOut(f"no answer within {self._deadline} s")
        with self._lock:
            return self._unwrap(self._outcome)

    def _run(self, done: threading.Event) -> None:
        outcome: T | BaseException
        try:
            outcome = self._check()
        except Exception as e:
            outcome = e
        with self._lock:
            self._outcome, self._at, self._running = outcome, monotonic(), None
        done.set()

    @staticmethod
    def _unwrap(outcome: T | BaseException | None) -> T:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]


@dataclass
class Readiness:
    """What ``/readyz`` reports; also refreshes the views' gauges on each check."""

    read_models: ReadModels | None
    write_probe: Callable[[], None] | None
    metrics: Metrics
    max_lag_seconds: float

    def __post_init__(self) -> None:
        self._writes = CachedCheck(
            self._probe_write, deadline=CHECK_DEADLINE_SECONDS, ttl=RESULT_TTL_SECONDS
        )
        self._views = CachedCheck(
            self._view_status, deadline=CHECK_DEADLINE_SECONDS, ttl=RESULT_TTL_SECONDS
        )
        # Mostly this process's own state (a view stopped here): judged afresh each time.
        self._start = CachedCheck(self._start_problems, deadline=CHECK_DEADLINE_SECONDS, ttl=0)

    def _probe_write(self) -> bool:
        if self.write_probe is not None:
            self.write_probe()
        return True

    def _start_problems(self) -> list[str]:
        """Not caught up with the store as it was at start, or a view stopped."""
        assert self.read_models is not None
        if self.read_models.is_ready():
            return []
        return self.read_models.problems() or ["read models are catching up"]

    def _view_status(self) -> list[ViewStatus]:
        assert self.read_models is not None
        found = self.read_models.status()
        self.metrics.observe_views(found)
        return found

    def view_status(self) -> list[ViewStatus]:
        """The views' status as of at most a moment ago (raises when it cannot be read)."""
        return self._views.get()

    def problems(self) -> list[str]:
        problems = []
        try:
            self._writes.get()
        except Exception as e:
            logger.warning("event store does not accept writes: %s: %s", type(e).__name__, e)
            problems.append(f"event store does not accept writes ({type(e).__name__}: {e})")
        if self.read_models is None:
            return problems
        try:
            problems.extend(self._start.get())
            statuses = self._views.get()
        except Exception as e:
            problems.append(f"cannot read the views' positions ({type(e).__name__}: {e})")
            return problems
        for view in statuses:
            if view.holder is None:
                problems.append(
                    f"{view.name} view: no process holds its projector lease, so nobody keeps "
                    f"it up to date (position {view.position} of {view.head})"
                )
            if view.lag_seconds > self.max_lag_seconds:
                problems.append(
                    f"{view.name} view lags {view.lag_seconds:.0f} s behind the store "
                    f"({view.lag_events} events; bound AERO_READY_MAX_LAG_SECONDS="
                    f"{self.max_lag_seconds:g})"
                )
        return problems
