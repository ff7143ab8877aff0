"""``aero-auth investigate``: point-in-time answers from the event store, for auditors.

Every answer is rebuilt from events (application.history, or the projections
fed into copies of the views), never read from a live read model, so it also
serves to check the read models. Nothing is written to the store: ``replay``
writes only its new file, ``verify`` only a temporary directory.
"""

from __future__ import annotations

import base64
import json
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from application.history import History, RequirementAnswer, TimelineEntry
from application.service import AeroAuth
from domain.credential import UserCredential
from domain.errors import (
    AeroError,
    EnvironmentNotFoundError,
    InvalidTimestampError,
    UserNotFoundError,
)
from domain.instants import parse_rfc3339, rfc3339
from interfaces.composition import Store, build_application
from interfaces.keys import KeyConfigurationError
from interfaces.settings import Settings
from projections.replay import replay_until
from projections.runtime import ProgressCallback
from projections.verify import MissingViewError, VerifyReport, open_live_views, verify_views

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
        "exist (yet), 2 for bad input such as a malformed or future instant. "
        "replay copies every read model as at an instant into a new SQLite file; verify "
        "rebuilds the read models and compares them with the live ones."
    ),
    no_args_is_help=True,
    add_completion=False,
)

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
    try:
        return parse_rfc3339(value, name)
    except InvalidTimestampError as e:
        _fail(e.detail, BAD_INPUT)


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
def _application() -> Iterator[AeroAuth]:
    """The configured store's application; domain errors become one line and an exit status."""
    settings = _settings()
    try:
        app = build_application(settings)
    except KeyConfigurationError as e:
        _fail(f"configuration: {e}", BAD_INPUT)
    except Exception as e:  # the store is unreachable or refuses us: say why, then stop
        _fail(f"cannot open the event store: {type(e).__name__}: {e}", NOT_FOUND)
    try:
        yield app
    except (EnvironmentNotFoundError, UserNotFoundError) as e:
        _fail(e.detail, NOT_FOUND)
    except AeroError as e:
        _fail(e.detail, BAD_INPUT)
    finally:
        app.close()


@contextmanager
def _history() -> Iterator[History]:
    with _application() as app:
        yield History(app)


@contextmanager
def _progress(label: str) -> Iterator[ProgressCallback]:
    """A progress bar on stderr, shown only on a terminal; yields its (done, total) callback."""
    err = Console(stderr=True)
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


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
        "identity_issuer": user.identity_issuer,
        "identity_subject": user.identity_subject,
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
    with _history() as history, _progress("replaying users") as advance:
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


# ----- copies of the read models -----


def _target(into: str) -> Path:
    """The new file named by --into: a SQLite URL (or a plain path) that does not exist yet."""
    if "://" in into:
        try:
            store = Store.from_url(into)
        except ValueError as e:
            _fail(f"--into: {e}", BAD_INPUT)
        if store.kind != "sqlite" or store.sqlite_path is None:
            _fail(
                f"--into must name a new SQLite file, e.g. sqlite:///case-4711.db, not {into!r}",
                BAD_INPUT,
            )
        path = store.sqlite_path
    else:
        path = Path(into)
    if path.exists():
        _fail(f"{path} already exists: replay writes only to a new file", BAD_INPUT)
    if not path.parent.is_dir():
        _fail(f"no directory {path.parent} for {path.name}", BAD_INPUT)
    return path


def _source(url: str) -> str:
    """The event store as the copy records it: never a password."""
    store = Store.from_url(url)
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return f"sqlite:///{store.sqlite_path.resolve()}"
    return f"postgresql://{store.user}@{store.host}:{store.port}/{store.dbname}"


@investigate_app.command()
def replay(
    until: Annotated[
        str,
        typer.Option(
            "--until", help="RFC 3339: events at or before it are replayed.", show_default=False
        ),
    ],
    into: Annotated[
        str,
        typer.Option(
            "--into",
            help="The new SQLite file: sqlite:///case-4711.db (relative), "
            "sqlite:////abs/case.db, or a plain path. Never overwritten.",
            show_default=False,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Copy every read model as it stood at an instant into a new SQLite file, for sqlite3.

    The same projections that keep the live views are fed every event that
    occurred at or before --until, judged by each event's own timestamp (not
    by commit order, which can differ by a hair across aggregates); the store
    and its views are only read. Instants in the file are
    RFC 3339 text in UTC with microseconds, which sorts as text; flags are 0
    or 1; groups, roles and details are JSON text. Tables:

    - replay: until, last_position (the store's last event when the replay
    started), events (replayed), later_events (left out), source (the event
    store), made_at.

    - policies: environment, require_2fa, groups (2FA only for these; [] is
    everyone).

    - users: environment, username, groups, roles, required, rule ("all",
    "group:NAME" or NULL), registered, locked_until (the code step's lock if
    still in force at --until), user_id.

    - audit_log: position, occurred_at, environment, type, username, actor,
    outcome, ip, user_agent, details, hash.

    - audit_chain: environment, entries, last_position, last_hash.

    Each environment's entries form a SHA-256 chain, checkable offline: in
    position order, hash = sha256(bytes of the previous hex hash, or 32 zero
    bytes first || canonical JSON of position, environment, occurred_at, type,
    username, actor, outcome, ip, user_agent and details (details parsed);
    keys sorted, no spaces, UTF-8).
    """
    instant = parse_instant(until, "--until")
    target = _target(into)
    settings = _settings()
    with _application() as app:
        now = app.clock.now()
        if instant > now:
            _fail(f"--until {rfc3339(instant)} is in the future (now {rfc3339(now)})", BAD_INPUT)
        try:
            with _progress("replaying events") as advance:
                summary = replay_until(
                    app, instant, target, _source(settings.database_url), advance
                )
        except FileExistsError:
            _fail(f"{target} appeared during the replay: it was left alone", BAD_INPUT)
        except OSError as e:
            _fail(f"cannot write {target}: {e}", BAD_INPUT)
    data = {
        "file": str(summary.path),
        "until": summary.until,
        "events": summary.events,
        "later_events": summary.later_events,
        "last_position": summary.last_position,
        "environments": summary.environments,
        "users": summary.users,
        "audit_entries": summary.audit_entries,
    }
    if as_json:
        _print_json(data)
    else:
        _print_fields(f"read models at {rfc3339(instant)} in {summary.path}", data)


@investigate_app.command()
def verify(
    max_differences: Annotated[
        int, typer.Option("--max-differences", min=1, help="List at most this many differences.")
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """Rebuild every read model from position 0 and compare it with the live one, row for row.

    Each live view is compared as it stood at one committed state, against a
    rebuild up to exactly that state's position, so the service may keep
    running. Also checks every environment's audit hash chain. The rebuilds
    go to a temporary directory (TMPDIR); the store and its views are only
    read. Exit status: 0 when everything is equal and every chain intact,
    1 otherwise (differences are listed: view, table, key, column, live,
    rebuilt).
    """
    with _application() as app:
        try:
            live = open_live_views(app)
        except MissingViewError as e:
            _fail(str(e), NOT_FOUND)
        try:
            with (
                tempfile.TemporaryDirectory(prefix="aero-verify-") as scratch,
                _progress("rebuilding views") as advance,
            ):
                report = verify_views(app, live, Path(scratch), advance, max_differences)
        finally:
            live.close()
    if as_json:
        _print_json(_verify_json(report))
    else:
        _print_verify(report)
    if not report.clean:
        raise typer.Exit(code=1)


def _verify_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "clean": report.clean,
        "positions": report.positions,
        "difference_count": report.difference_count,
        "differences": [asdict(d) for d in report.differences],
        "chains": [
            {
                "environment": chain.environment,
                "entries_checked": chain.entries_checked,
                "intact": chain.intact,
                "first_broken_position": chain.first_broken_position,
            }
            for chain in report.chains
        ],
    }


def _cell(value: Any, column: str | None) -> str:
    if column is None and value is None:
        return "(no row)"
    if isinstance(value, dict):
        return "\n".join(f"{k}={_text(v)}" for k, v in value.items())
    return _text(value)


def _print_verify(report: VerifyReport) -> None:
    console = Console()
    where = ", ".join(f"{name} at position {p}" for name, p in report.positions.items())
    if report.differences:
        table = Table(title=f"{report.difference_count} differences ({where})")
        for column in ("view", "table", "key", "column", "live", "rebuilt"):
            table.add_column(column, overflow="fold")
        for d in report.differences:
            key = ", ".join(f"{k}={v}" for k, v in d.key.items())
            table.add_row(
                d.view,
                d.table,
                key,
                d.column or "(whole row)",
                _cell(d.live, d.column),
                _cell(d.rebuilt, d.column),
            )
        console.print(table)
        if report.difference_count > len(report.differences):
            console.print(f"... and {report.difference_count - len(report.differences)} more")
    else:
        console.print(f"views equal to their rebuilds ({where})")
    chains = Table(title="audit hash chains")
    for column in ("environment", "entries checked", "chain"):
        chains.add_column(column)
    for chain in report.chains:
        state = (
            "intact"
            if chain.intact
            else f"[red]broken at position {chain.first_broken_position}[/red]"
        )
        chains.add_row(chain.environment, str(chain.entries_checked), state)
    console.print(chains)
