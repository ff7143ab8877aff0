"""``aero-auth investigate`` questions about the past: timeline, state, required, policy,
who-was-required, each answered by application.history from the events alone."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from domain.instants import rfc3339
from interfaces.cli.investigate_render import (
    credential_fields,
    emit,
    requirement_fields,
    rows_table,
    timeline_table,
)
from interfaces.cli.investigation import (
    AtOption,
    EnvArgument,
    JsonOption,
    UserArgument,
    opened_history,
    parse_instant,
    progress_bar,
)


def timeline(
    environment: EnvArgument,
    username: UserArgument,
    since: Annotated[
        str | None, typer.Option(help="RFC 3339; events at or after it (inclusive).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="RFC 3339; events before it (exclusive).")
    ] = None,
    with_policy: Annotated[
        bool, typer.Option("--with-policy", help="Merge in the environment's policy changes.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """What happened to a user's credential, oldest first: who, from where, with what outcome.

    Details never include hashes, secrets, challenge ids or recovery codes.
    """
    since_at = None if since is None else parse_instant(since, "--since")
    until_at = None if until is None else parse_instant(until, "--until")
    with opened_history() as history:
        entries = history.timeline(
            environment, username, since_at, until_at, include_policy=with_policy
        )
    emit(
        [asdict(entry) for entry in entries],
        as_json,
        lambda: [timeline_table(environment, username, entries)],
    )


def state(
    environment: EnvArgument, username: UserArgument, at: AtOption, as_json: JsonOption = False
) -> None:
    """The user's credential as it stood at an instant (no secrets), and if 2FA was required."""
    instant = parse_instant(at)
    with opened_history() as history:
        policy = history.environment_at(environment, instant)
        user = history.user_at(environment, username, instant)
    fields = credential_fields(user, instant, policy.requiring_rule(user.groups))
    emit(fields, as_json, f"{user.username} in {environment} at {rfc3339(instant)}")


def required(
    environment: EnvArgument, username: UserArgument, at: AtOption, as_json: JsonOption = False
) -> None:
    """Whether the user had to use 2FA at an instant, by which rule, and the policy then."""
    instant = parse_instant(at)
    with opened_history() as history:
        answer = history.required_at(environment, username, instant)
    title = f"{answer.username} in {environment} at {rfc3339(instant)}"
    emit(requirement_fields(answer), as_json, title)


def policy(environment: EnvArgument, at: AtOption, as_json: JsonOption = False) -> None:
    """The environment's 2FA policy at an instant, and who changed it last, when."""
    instant = parse_instant(at)
    with opened_history() as history:
        answer = history.policy_at(environment, instant)
    data = {
        "require_2fa": answer.require_2fa,
        "groups": list(answer.groups),
        "changed_by": answer.changed_by,
        "changed_at": answer.changed_at,
        "environment": answer.environment,
        "at": answer.at,
    }
    emit(data, as_json, f"policy of {environment} at {rfc3339(instant)}")


def who_was_required(
    environment: EnvArgument,
    at: AtOption,
    include_all: Annotated[
        bool, typer.Option("--all", help="List every user who existed then, required or not.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Every user who had to use 2FA at an instant, each rebuilt from its own history.

    Shows a progress bar on a terminal (stderr) while the users are replayed.
    """
    instant = parse_instant(at)
    with opened_history() as history, progress_bar("replaying users") as advance:
        answers = history.who_was_required(environment, instant, progress=advance)
    shown = [a for a in answers if include_all or a.required]
    rows = [
        {"username": a.username, "required": a.required, "rule": a.rule, "registered": a.registered}
        for a in shown
    ]
    kind = "users" if include_all else "users required to use 2FA"
    title = f"{len(rows)} {kind} in {environment} at {rfc3339(instant)}"
    columns = ("username", "required", "rule", "registered")
    emit(rows, as_json, lambda: [rows_table(title, columns, rows)])
