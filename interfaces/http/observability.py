"""Metrics and logs of one HTTP app.

Each app owns its CollectorRegistry: the process-wide default registry would
refuse the second app a test suite (or a reload) creates.
"""

from __future__ import annotations

import logging
import re
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


# Printable ASCII but the backslash: nothing to escape. Four values per request
# (method, path, route, address) are almost always only these.
_PLAIN = re.compile(r"[\x20-\x5b\x5d-\x7e]*")


def escape(value: object, limit: int = 200) -> str:
    """A client-supplied value made safe for one log line (SECURITY.md 17).

    Control characters (newlines above all) become visible escapes, so a
    client cannot end our line and forge the next one; long values are cut.
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if _PLAIN.fullmatch(text):
        return text
    return escape_each(text)


def escape_each(text: str) -> str:
    """``escape`` without the fast path or the cut: every character looked at."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch)[0] == "C":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
