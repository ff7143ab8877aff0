"""``aero-auth keys``: the keys of the TOTP secrets, rotated and accounted for.

``rotate`` re-encrypts the stored secrets under the current key (the first of
AERO_SECRET_KEYS); ``status`` says which key ids the stored secrets use, so the
operator knows when an old key may go (docs/operations.md).
Exit status: 0 done, 1 finding, 2 usage, 3 configuration or store unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from eventsourcing.persistence import PersistenceError

from application.secret_keys import (
    KeyUse,
    RotationReport,
    environment_slugs,
    key_uses,
    rotate_environment,
    usernames_by_environment,
)
from application.service import AeroAuth
from domain.errors import AeroError
from domain.origin import Origin, originating
from interfaces.cli.exits import CONFIGURATION, FINDING, USAGE, configuration_errors, fail
from interfaces.composition import build_application, check_store, load_settings

app = typer.Typer(help="The keys of the stored TOTP secrets.", no_args_is_help=True)


@contextmanager
def _application() -> Iterator[AeroAuth]:
    """The application on an existing store, with the configured keys: never a new store,
    and never a new key, which would decrypt none of the stored secrets."""
    with configuration_errors():
        settings = load_settings()
        check_store(settings)
        application = build_application(settings, create_keys=False)
    try:
        with originating(Origin(actor="operator", ip=None, user_agent="aero-auth cli")):
            yield application
    except PersistenceError as e:
        # Each user's re-encryption is saved on its own: those saved stay done.
        fail(
            f"the store failed: {type(e).__name__}: {e}; run the command again",
            CONFIGURATION,
        )
    finally:
        application.close()


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _report_line(report: RotationReport) -> str:
    return (
        f"{report.environment}: {report.reencrypted} rotated to {report.key_id}, "
        f"{report.already_current} already under {report.key_id}, "
        f"{report.without_secret} without an authenticator secret"
        + (f", {len(report.not_rotated)} not rotated" if report.not_rotated else "")
    )


@app.command("rotate")
def rotate(
    environments: Annotated[
        list[str] | None,
        typer.Argument(metavar="ENV", help="the environments' slugs", show_default=False),
    ] = None,
    all_environments: Annotated[
        bool, typer.Option("--all", help="every environment of the store")
    ] = False,
) -> None:
    """Re-encrypt the stored TOTP secrets under older keys under the current key.

    The current key is the first of AERO_SECRET_KEYS; the secrets are those of
    registered authenticators and of registrations in progress. Run it once
    every server process has the new key configured (first) and has restarted.
    Each user's secret gets a new event; the old events stay. A second run
    changes nothing; a run that was interrupted can be run again. Prints per
    environment how many were rotated, were already current, or have no secret.
    Exit status: 0 done, 1 a user not rotated or an environment not found, 2 no
    environment named (or both names and --all), 3 configuration.
    """
    named = environments or []
    if all_environments == bool(named):
        fail("name the environments to rotate, or give --all (not both)", USAGE)
    with _application() as application:
        slugs = environment_slugs(application)
        unknown = [slug for slug in named if slug not in slugs]
        if unknown:
            fail(
                f"environment_not_found: no environment {', '.join(map(repr, unknown))}; "
                "nothing was rotated",
                FINDING,
            )
        users = usernames_by_environment(application)
        reports = []
        for slug in slugs if all_environments else dict.fromkeys(named):
            try:
                report = rotate_environment(application, slug, users.get(slug, []))
            except AeroError as e:
                fail(f"{e.code}: {e.detail}", FINDING)
            # Each environment as it is done: a long run shows its progress.
            typer.echo(_report_line(report))
            for username, reason in report.not_rotated.items():
                typer.echo(f"  {username}: not rotated: {reason}")
            reports.append(report)
    left = sum(len(report.not_rotated) for report in reports)
    if left:
        fail(
            f"{_plural(left, 'user')} not rotated (listed above): configure the key their "
            "secret is under, or run again after a conflict",
            FINDING,
        )
    if not any(report.reencrypted for report in reports):
        typer.echo("nothing to rotate: every stored secret there is under the current key")


def _status_line(use: KeyUse) -> str:
    state = "current" if use.current else "configured" if use.configured else "NOT CONFIGURED"
    line = (
        f"{use.key_id}\t{state}\t{_plural(use.secrets, 'stored secret')} "
        f"({use.registered} registered, {use.pending} pending registration)"
    )
    if use.configured and use.undecryptable:
        line += f"; {use.undecryptable} not decrypted by the configured key"
    elif use.configured and not use.current:
        line += (
            "; run `aero-auth keys rotate --all`"
            if use.secrets
            else "; no stored secret needs it: it may be removed"
        )
    return line


@app.command("status")
def status() -> None:
    """How many stored TOTP secrets need each key id, configured or not.

    Each configured key id (the current one first), then each key id the stored
    secrets use that is not configured, with how many stored secrets (those the
    users hold now, not history) need it.

    Exit status: 0 every stored secret has its key, 1 a stored secret's key id is not
    configured or its key does not decrypt it, 3 configuration.
    """
    with _application() as application:
        uses = key_uses(application)
    for use in uses:
        typer.echo(_status_line(use))
    missing = [use for use in uses if not use.configured]
    wrong = [use for use in uses if use.configured and use.undecryptable]
    if missing:
        named = ", ".join(f"{use.key_id} ({_plural(use.secrets, 'secret')})" for use in missing)
        fail(
            f"stored secrets use key id(s) that are not configured: {named}; the service "
            "will not start until AERO_SECRET_KEYS includes them",
            FINDING,
        )
    if wrong:
        named = ", ".join(f"{use.key_id} ({use.undecryptable})" for use in wrong)
        fail(
            f"the configured key does not decrypt stored secrets of key id(s) {named}: "
            "a key was replaced under its id; configure the key they were encrypted with",
            FINDING,
        )
