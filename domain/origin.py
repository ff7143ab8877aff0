"""Who acted, and from where: recorded on every event a request causes.

The interfaces set the origin once per request or command; aggregates read it
when they trigger an event, so no command signature has to thread it through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from uuid import uuid4


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


# The command that is running: every event it causes carries this id, so that a
# save whose commit was acknowledged too late (the store answered with an error,
# or the library retried the insert into its own rows) can be told apart from a
# save that lost to another writer.
_command: ContextVar[str | None] = ContextVar("aero_command", default=None)


def current_command_id() -> str | None:
    return _command.get()


@contextmanager
def running_command() -> Iterator[str]:
    """A fresh command id, unless a command is already running: one inside another
    (a command that calls another) shares the outer id."""
    running = _command.get()
    if running is not None:
        yield running
        return
    command_id = uuid4().hex
    token = _command.set(command_id)
    try:
        yield command_id
    finally:
        _command.reset(token)
