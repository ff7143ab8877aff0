"""``aero-auth service-credentials``: who may call token introspection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from application.service_credentials import ServiceCredentials
from domain.errors import AeroError
from domain.origin import Origin, originating
from interfaces.cli.exits import FINDING, configuration_errors, fail
from interfaces.composition import build_application, check_store, load_settings

app = typer.Typer(
    help="Credentials with which other services call token introspection.",
    no_args_is_help=True,
)

Env = Annotated[str, typer.Option("--env", help="the environment's slug")]
Name = Annotated[str, typer.Option("--name", help="the calling service, e.g. billing")]


@contextmanager
def _credentials() -> Iterator[ServiceCredentials]:
    with configuration_errors():
        settings = load_settings()
        check_store(settings)
        application = build_application(settings, create_keys=False)  # never a new key
    try:
        with originating(Origin(actor="operator", ip=None, user_agent="aero-auth cli")):
            yield ServiceCredentials(application)
    except AeroError as e:
        fail(f"{e.code}: {e.detail}", FINDING)
    finally:
        application.close()


@app.command("create")
def create(env: Env, name: Name) -> None:
    """Issue a credential (or a new one for a revoked name); the secret is printed once."""
    with _credentials() as credentials:
        issued = credentials.create(env, name)
    typer.echo(f"client_id: {issued.client_id}")
    typer.echo(f"client_secret: {issued.client_secret}")
    typer.echo(
        f"shown once; the service sends both with HTTP Basic to "
        f"POST /v1/environments/{issued.environment}/introspect",
        err=True,
    )


@app.command("revoke")
def revoke(env: Env, name: Name) -> None:
    """The credential stops working at once."""
    with _credentials() as credentials:
        credentials.revoke(env, name)
    typer.echo(f"revoked {name} in {env}")


@app.command("list")
def list_(env: Env) -> None:
    """Every credential of the environment, live or revoked."""
    with _credentials() as credentials:
        names = credentials.names(env)
    for name, live in names:
        typer.echo(f"{name}\t{'live' if live else 'revoked'}")
