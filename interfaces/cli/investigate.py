"""``aero-auth investigate``: point-in-time answers from the event store, for auditors.

Every answer is rebuilt from events (application.history), never read from a
read model, so it also serves to check the read models. Nothing is written.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from application.history import History, RequirementAnswer, TimelineEntry, rfc3339
from domain.credential import UserCredential
from domain.errors import AeroError, EnvironmentNotFoundError, UserNotFoundError
from interfaces.composition import Store, build_application
from interfaces.keys import KeyConfigurationError
from interfaces.settings import Settings

NOT_FOUND = 1
BAD_INPUT = 2

investigate_app = typer.Typer(
    name="investigate",
    help=(
        "Answer point-in-time questions from the event store: what a user's credential, "
        "the 2FA policy and the requirement were at an instant, and what happened when. "
        "Configured like the server (AERO_DATABASE_URL); reads only. Output is a table; "
        "--json prints JSON for scripts. Instants are RFC 3339 (2026-03-03T10:00:00Z or "
        "any offset), shown in UTC. Exit status: 1 when the environment or user did not "
        "exist (yet), 2 for bad input such as a malformed or future instant."
    ),
    no_args_is_help=True,
    add_completion=False,
)

# RFC 3339 section 5.6 date-time: a full date, a full time, and an offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AtOption = Annotated[
    str, typer.Option("--at", help="The instant, RFC 3339: changes at or before it count.")
]
EnvArgument = Annotated[str, typer.Argument(help="The environment's slug.", show_default=False)]
UserArgument = Annotated[str, typer.Argument(help="The username (any case).", show_default=False)]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"aero-auth investigate: {message}", err=True)
    raise typer.Exit(code=code)


def parse_instant(value: str, name: str = "--at") -> datetime:
    """An RFC 3339 instant (``Z`` or any offset), in UTC; anything else is bad input."""
    value = value.strip()
    if not _RFC3339.match(value):
        _fail(
            f"{name} {value!r} is not an RFC 3339 instant such as 2026-03-03T10:00:00Z",
            BAD_INPUT,
        )
    normalized = value.upper().replace(" ", "T").replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(normalized).astimezone(UTC)
    except ValueError as e:
        _fail(f"{name} {value!r} is not a valid RFC 3339 instant: {e}", BAD_INPUT)


def _settings() -> Settings:
    try:
        # pydantic-settings fills every field from AERO_ variables or defaults.
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        _fail(f"configuration: AERO_{where.upper()}: {first['msg']}", BAD_INPUT)
    try:
        store = Store.from_url(settings.database_url)
    except ValueError as e:
        _fail(f"configuration: {e}", BAD_INPUT)
    if store.kind == "sqlite" and store.sqlite_path and not store.sqlite_path.exists():
        # Opening a missing SQLite file would create an empty store.
        _fail(f"no event store at {store.sqlite_path}: set AERO_DATABASE_URL", BAD_INPUT)
    # History never decrypts a TOTP secret, so the investigator needs no access
    # to the key, and no key file is created in the data directory.
    throwaway = base64.b64encode(secrets.token_bytes(32)).decode()
    return settings.model_copy(update={"secret_key": SecretStr(throwaway)})


@contextmanager
def _history() -> Iterator[History]:
    """History over the configured store; domain errors become one line and an exit status."""
    settings = _settings()
    try:
        app = build_application(settings)
    except KeyConfigurationError as e:
        _fail(f"configuration: {e}", BAD_INPUT)
    except Exception as e:  # the store is unreachable or refuses us: say why, then stop
        _fail(f"cannot open the event store: {type(e).__name__}: {e}", NOT_FOUND)
    try:
        yield History(app)
    except (EnvironmentNotFoundError, UserNotFoundError) as e:
        _fail(e.detail, NOT_FOUND)
    except AeroError as e:
        _fail(e.detail, BAD_INPUT)
    finally:
        app.close()


# ----- rendering -----


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [_jsonable(v) for v in value]
        return sorted(items) if isinstance(value, frozenset | set) else items
    return value


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(_jsonable(data), indent=2, ensure_ascii=False))


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | frozenset | set):
        return ", ".join(str(v) for v in sorted(value)) or "(none)"
    return str(value)


def _print_fields(title: str, fields: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in fields.items():
        table.add_row(name, _text(value))
    Console().print(table)


def _requirement_json(answer: RequirementAnswer) -> dict[str, Any]:
    data = asdict(answer)
    # The contract's three first, then what decided them.
    return {
        "required": data.pop("required"),
        "rule": data.pop("rule"),
        "registered": data.pop("registered"),
        **data,
    }


def _credential(user: UserCredential, at: datetime, rule: str | None) -> dict[str, Any]:
    """What an investigator may see of a credential: never a hash, secret or challenge."""
    return {
        "environment": user.environment,
        "username": user.username,
        "at": at,
        "version": user.version,
        "created_at": user.created_on,
        "groups": sorted(user.groups),
        "roles": sorted(user.roles),
        "required": rule is not None,
        "rule": rule,
        "registered": user.registered,
        "registration_pending": user.pending_secret is not None,
        "disabled": user.disabled,
        "code_failures": user.code_failures,
        "total_code_failures": user.total_code_failures,
        "code_locked_until": user.code_step_locked_until(at),
        "password_failures": user.password_failures,
        "password_locked_until": user.password_step_locked_until(at),
        "recovery_codes_left": len(user.recovery_codes),
        "login_in_progress": user.challenge_step,
        "last_login_at": user.last_login_at,
        "sessions_valid_after": user.sessions_valid_after,
    }


# ----- commands -----


@investigate_app.command()
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
    with _history() as history:
        entries = history.timeline(
            environment, username, since_at, until_at, include_policy=with_policy
        )
    if as_json:
        _print_json([asdict(entry) for entry in entries])
        return
    _print_timeline(environment, username, entries)


def _print_timeline(environment: str, username: str, entries: list[TimelineEntry]) -> None:
    table = Table(title=f"{username} in {environment}: {len(entries)} events")
    table.add_column("#", no_wrap=True)
    table.add_column("occurred at", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    # One line each, so a narrow terminal folds them instead of squeezing a column away.
    table.add_column("actor / ip / user agent", overflow="fold")
    table.add_column("details", overflow="fold")
    for entry in entries:
        number = str(entry.version) if entry.stream == "user" else f"env {entry.version}"
        outcome = "[red]failure[/red]" if entry.outcome == "failure" else "success"
        origin = "\n".join(_text(v) for v in (entry.actor, entry.ip, entry.user_agent))
        details = "\n".join(f"{k}={_text(v)}" for k, v in entry.details.items())
        table.add_row(number, rfc3339(entry.occurred_at), entry.type, outcome, origin, details)
    Console().print(table)


@investigate_app.command()
def state(
    environment: EnvArgument, username: UserArgument, at: AtOption, as_json: JsonOption = False
) -> None:
    """The user's credential as it stood at an instant (no secrets), and if 2FA was required."""
    instant = parse_instant(at)
    with _history() as history:
        policy = history.environment_at(environment, instant)
        user = history.user_at(environment, username, instant)
    fields = _credential(user, instant, policy.requiring_rule(user.groups))
    if as_json:
        _print_json(fields)
    else:
        _print_fields(f"{user.username} in {environment} at {rfc3339(instant)}", fields)


@investigate_app.command()
def required(
    environment: EnvArgument, username: UserArgument, at: AtOption, as_json: JsonOption = False
) -> None:
    """Whether the user had to use 2FA at an instant, by which rule, and the policy then."""
    instant = parse_instant(at)
    with _history() as history:
        answer = history.required_at(environment, username, instant)
    data = _requirement_json(answer)
    if as_json:
        _print_json(data)
    else:
        _print_fields(f"{answer.username} in {environment} at {rfc3339(instant)}", data)


@investigate_app.command()
def policy(environment: EnvArgument, at: AtOption, as_json: JsonOption = False) -> None:
    """The environment's 2FA policy at an instant, and who changed it last, when."""
    instant = parse_instant(at)
    with _history() as history:
        answer = history.policy_at(environment, instant)
    data = {
        "require_2fa": answer.require_2fa,
        "groups": list(answer.groups),
        "changed_by": answer.changed_by,
        "changed_at": answer.changed_at,
        "environment": answer.environment,
        "at": answer.at,
    }
    if as_json:
        _print_json(data)
    else:
        _print_fields(f"policy of {environment} at {rfc3339(instant)}", data)


@investigate_app.command("who-was-required")
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
    err = Console(stderr=True)
    with (
        _history() as history,
        Progress(
            TextColumn("replaying users"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as progress,
    ):
        task = progress.add_task("replay", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        answers = history.who_was_required(environment, instant, progress=advance)
    shown = [a for a in answers if include_all or a.required]
    rows = [
        {"username": a.username, "required": a.required, "rule": a.rule, "registered": a.registered}
        for a in shown
    ]
    if as_json:
        _print_json(rows)
        return
    kind = "users" if include_all else "users required to use 2FA"
    table = Table(title=f"{len(rows)} {kind} in {environment} at {rfc3339(instant)}")
    for column in ("username", "required", "rule", "registered"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(_text(row[c]) for c in ("username", "required", "rule", "registered")))
    Console().print(table)
