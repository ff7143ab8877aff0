"""Metrics and logs of one HTTP app.

Each app owns its CollectorRegistry: the process-wide default registry would
refuse the second app a test suite (or a reload) creates.

Under ``aero-auth serve --workers N`` every worker writes its values to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, which serve
sets up), and a scrape of any worker sums them over all workers. Without that
directory (one worker, tests) the values are this process's.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from domain.signals import (
    CONFLICT_RETRIED,
    CONFLICT_RETRIES_EXHAUSTED,
    TIME_HELD_BACK,
    Signal,
)

logger = logging.getLogger("aero_auth.http")

# The route template, never the raw path, labels a request: raw paths would
# give every username its own time series.
UNMATCHED_ROUTE = "<unmatched>"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "aero_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aero_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.logins = Counter(
            "aero_login_steps",
            "Login steps by step (password, registration, two_factor, recovery) and outcome",
            ["step", "outcome"],
            registry=self.registry,
        )
        self.read_model_timeouts = Counter(
            "aero_read_model_wait_timeouts",
            "Admin writes answered before the read models had caught up with them",
            registry=self.registry,
        )
        self.read_model_wait = Histogram(
            "aero_read_model_wait_seconds",
            "How long admin writes waited for the read models to include them",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        # Gauges of the views: each worker sets what it last saw. Positions only grow,
        # so the highest is the truth; lag is what the most recent look found; the
        # lease gauge adds up to the number of this host's workers that hold it.
        self.view_position = Gauge(
            "aero_view_position",
            "The last event position each view has processed",
            ["view"],
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.view_lag_events = Gauge(
            "aero_view_lag_events",
            "Events in the store that each view has not processed yet",
            ["view"],
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.view_lag_seconds = Gauge(
            "aero_view_lag_seconds",
            "Age of the oldest event each view has not processed yet (0 when current)",
            ["view"],
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.view_lease_held = Gauge(
            "aero_view_lease_held",
            "1 where this process holds the view's projector lease (summed: holders here)",
            ["view"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.view_lease_holder = Gauge(
            "aero_view_lease_holder_present",
            "1 when some process (of any host) holds the view's projector lease, else 0",
            ["view"],
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.conflict_retries = Counter(
            "aero_conflict_retries",
            "Commands decided again after another writer saved the aggregate first",
            registry=self.registry,
        )
        self.conflict_exhausted = Counter(
            "aero_conflict_retries_exhausted",
            "Commands that still met a conflict after their last retry",
            registry=self.registry,
        )
        self.store_errors = Counter(
            "aero_store_errors",
            "Requests failed by the event store or a view's database, by error class",
            ["kind"],
            registry=self.registry,
        )
        self.time_held_back = Counter(
            "aero_event_time_held_back",
            "Events stamped with their aggregate's previous time because the clock was "
            "behind it (a clock step back, or hosts' clocks apart)",
            registry=self.registry,
        )
        self._connections: list[tuple[Signal, Any]] = [
            (CONFLICT_RETRIED, self.conflict_retries.inc),
            (CONFLICT_RETRIES_EXHAUSTED, self.conflict_exhausted.inc),
            (TIME_HELD_BACK, self.time_held_back.inc),
        ]

    def connect(self) -> None:
        """Count the domain's and the application's signals (while the app runs)."""
        for signal, observer in self._connections:
            signal.connect(observer)

    def disconnect(self) -> None:
        for signal, observer in self._connections:
            signal.disconnect(observer)

    def observe_views(self, statuses: Iterable[Any]) -> None:
        """Set the views' gauges from projections.api.ViewStatus values."""
        for view in statuses:
            self.view_position.labels(view.name).set(view.position)
            self.view_lag_events.labels(view.name).set(view.lag_events)
            self.view_lag_seconds.labels(view.name).set(view.lag_seconds)
            self.view_lease_held.labels(view.name).set(view.holder == "this process")
            self.view_lease_holder.labels(view.name).set(view.holder is not None)

    def store_error(self, error: BaseException) -> bool:
        """Count ``error`` if a database raised it; whether it did."""
        kind = store_error_kind(error)
        if kind is not None:
            self.store_errors.labels(kind).inc()
        return kind is not None

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def login_step(self, step: str, outcome: str) -> None:
        self.logins.labels(step, outcome).inc()

    def process_ended(self) -> None:
        """Under several workers: drop this worker's live gauges from the sums."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        # Every worker's files, this one's included: the sum over the workers.
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


_STORE_MODULES = ("eventsourcing.persistence", "sqlite3", "psycopg", "psycopg_pool")


def store_error_kind(error: BaseException) -> str | None:
    """``sqlite3.OperationalError``-like names for errors the databases raise, else None.

    The library wraps the drivers' errors in its own classes (eventsourcing.persistence
    .OperationalError, ...), with the driver's as the cause: both are named."""
    seen: BaseException | None = error
    names: list[str] = []
    while seen is not None and len(names) < 3:
        module = type(seen).__module__
        if module.startswith(_STORE_MODULES):
            names.append(f"{module.split('.')[0]}.{type(seen).__name__}")
        seen = seen.__cause__ or seen.__context__
    return "/".join(names) if names else None


# Unicode ends a line at these besides the control characters (category C, which
# also holds U+0085, U+000B and U+000C): a log viewer that honours them would show
# the rest of a client's value as a line of our own.
_LINE_SEPARATORS = frozenset({"Zl", "Zp"})


def escape(value: object, limit: int = 200) -> str:
    """A client-supplied value made safe for one log line (SECURITY.md 17).

    Control characters and line separators (newlines above all, and U+2028,
    U+2029) become visible escapes, so a client cannot end our line and forge
    the next one; a backslash is doubled, so an escape cannot be forged either;
    long values are cut.
    """
    text = str(value)
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    escaped = "".join(_escaped(ch) for ch in text)
    return escaped + "..." if cut else escaped


def _escaped(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    category = unicodedata.category(ch)
    if category[0] == "C" or category in _LINE_SEPARATORS:
        # Python's forms, each of a fixed length, so an escape reads back unambiguously.
        code = ord(ch)
        if code < 0x100:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return ch
