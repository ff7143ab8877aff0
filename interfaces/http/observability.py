"""Metrics and logs of one HTTP app.

Each app owns its CollectorRegistry: the process-wide default registry would
refuse the second app a test suite (or a reload) creates.
"""

from __future__ import annotations

import logging
import unicodedata

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def login_step(self, step: str, outcome: str) -> None:
        self.logins.labels(step, outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


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
