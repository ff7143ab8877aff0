"""``aero-auth environments``: what the operator does outside HTTP."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from domain.errors import AeroError, EnvironmentNotFoundError, InvalidInputError
from domain.origin import Origin, originating
from domain.rules import valid_display_name, valid_issuer, valid_slug
from interfaces.cli.exits import FINDING, USAGE, configuration_errors, fail
from interfaces.composition import (
    StoreNotFoundError,
    build_application,
    build_investigator,
    check_store,
    load_settings,
    secret_box,
)
from interfaces.settings import Settings

app = typer.Typer(help="Manage environments.", no_args_is_help=True)


def _refuse_existing(settings: Settings, slug: str) -> None:
    """Exit 1 if ``slug`` exists; creates nothing (a missing store holds no environment)."""
    try:
        check_store(settings)
    except StoreNotFoundError:
        return
    investigator = build_investigator(settings)
    try:
        investigator.environment(slug)
    except EnvironmentNotFoundError:
        return
    finally:
        investigator.close()
    fail(f"environment_exists: environment {slug!r} already exists", FINDING)


def _password(admin: str, from_stdin: bool) -> str:
    if not from_stdin:
        return str(typer.prompt(f"Password for {admin}", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        fail("--password-stdin: nothing on standard input", USAGE)
    return line.removesuffix("\n").removesuffix("\r")


@app.command("create")
def create(
    slug: Annotated[str, typer.Argument(help="2-63 lowercase letters, digits and dashes")],
    display_name: Annotated[str, typer.Option("--display-name", help="shown to people")],
    admin: Annotated[str, typer.Option("--admin", help="username of the first admin")],
    issuer: Annotated[
        str, typer.Option("--issuer", help="the name the authenticator app shows")
    ] = "BizzStream Aero",
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="read the admin's password from the first line of stdin"
        ),
    ] = False,
) -> None:
    """Create an environment and its first admin (roles admin and auditor).

    The slug, names and whether the environment exists are checked before the
    password is asked for. Creates the store and its keys if there are none.
    Exit status: 0 created, 1 it exists or the password is refused, 2 a bad
    argument, 3 configuration.
    """
    try:
        valid_slug(slug)
        valid_display_name(display_name)
        valid_issuer(issuer)
    except InvalidInputError as e:
        fail(f"{e.code}: {e.detail}", USAGE)
    with configuration_errors():
        settings = load_settings()
        secret_box(settings)  # a key that cannot be used is refused before the password
        _refuse_existing(settings, slug)
    password = _password(admin, password_stdin)
    with configuration_errors():
        application = build_application(settings)
    try:
        with originating(Origin(actor="operator", ip=None, user_agent="aero-auth cli")):
            environment = application.create_environment(
                slug, display_name, issuer, admin, password
            )
    except InvalidInputError as e:
        fail(f"{e.code}: {e.detail}", USAGE)
    except AeroError as e:
        fail(f"{e.code}: {e.detail}", FINDING)
    finally:
        application.close()
    typer.echo(
        f"created environment {environment.slug} ({environment.display_name}) with admin {admin}"
    )
