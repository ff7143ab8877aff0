"""``aero-auth investigate`` for the identity provider: did an environment have one at an
instant, and how did a user log in (password, provider, which second step)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from application.history import LOGIN_TYPES
from domain.instants import rfc3339
from interfaces.cli.investigate_render import emit, timeline_table
from interfaces.cli.investigation import (
    AtOption,
    EnvArgument,
    JsonOption,
    UserArgument,
    opened_history,
    parse_instant,
)


def identity_provider(environment: EnvArgument, at: AtOption, as_json: JsonOption = False) -> None:
    """Whether the environment had an identity provider at an instant, and its settings
    then (never the client secret)."""
    instant = parse_instant(at)
    with opened_history() as history:
        answer = history.identity_provider_at(environment, instant)
    emit(asdict(answer), as_json, f"identity provider of {environment} at {rfc3339(instant)}")


def logins(
    environment: EnvArgument,
    username: UserArgument,
    since: Annotated[
        str | None, typer.Option(help="RFC 3339; events at or after it (inclusive).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="RFC 3339; events before it (exclusive).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """How the user logged in: each password or provider step (with the provider's issuer
    and subject), each code step, and how each login completed."""
    since_at = None if since is None else parse_instant(since, "--since")
    until_at = None if until is None else parse_instant(until, "--until")
    with opened_history() as history:
        entries = [
            entry
            for entry in history.timeline(environment, username, since_at, until_at)
            if entry.type in LOGIN_TYPES
        ]
    emit(
        [asdict(entry) for entry in entries],
        as_json,
        lambda: [timeline_table(environment, username, entries)],
    )
