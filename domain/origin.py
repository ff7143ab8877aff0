"""Who acted, and from where: recorded on every event a request causes.

The interfaces set the origin once per request or command; aggregates read it
when they trigger an event, so no command signature has to thread it through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Origin:
    actor: str | None = None
    ip: str | None = None
    user_agent: str | None = None


# Origin is a frozen dataclass, so sharing the default is safe.
_current: ContextVar[Origin] = ContextVar("aero_origin", default=Origin())  # noqa: B039


def current_origin() -> Origin:
    return _current.get()


@contextmanager
def originating(origin: Origin) -> Iterator[Origin]:
    token = _current.set(origin)
    try:
        yield origin
    finally:
        _current.reset(token)


@contextmanager
def acting_as(actor: str | None) -> Iterator[Origin]:
    """Keep the request's IP and user agent, name a different actor.

    A login is caused by the user who logs in, whoever the request's bearer is.
    """
    with originating(replace(current_origin(), actor=actor)) as origin:
        yield origin
