"""``aero-auth environments``: what the operator does outside HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from domain.errors import AeroError
from domain.origin import Origin, originating
from interfaces.composition import build_application, load_settings

app = typer.Typer(help="Manage environments.", no_args_is_help=True)


@app.command("create")
def create(
    slug: Annotated[str, typer.Argument(help="2-63 lowercase letters, digits and dashes")],
    display_name: Annotated[str, typer.Option("--display-name", help="shown to people")],
    admin: Annotated[str, typer.Option("--admin", help="username of the first admin")],
    issuer: Annotated[
        str, typer.Option("--issuer", help="the name the authenticator app shows")
    ] = "BizzStream Aero",
) -> None:
    """Create an environment and its first admin (roles admin and auditor)."""
    password = typer.prompt(f"Password for {admin}", hide_input=True, confirmation_prompt=True)
    application = build_application(load_settings())
    try:
        with originating(Origin(actor="operator", ip=None, user_agent="aero-auth cli")):
            environment = application.create_environment(
                slug, display_name, issuer, admin, password
            )
    except AeroError as e:
        typer.echo(f"error: {e.code}: {e.detail}", err=True)
        raise typer.Exit(1) from None
    finally:
        application.close()
    typer.echo(
        f"created environment {environment.slug} ({environment.display_name}) with admin {admin}"
    )
