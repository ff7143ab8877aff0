"""The ``aero-auth`` command.

Each command group lives in its own module; adding one is an import and
one ``app.add_typer(...)`` (or ``app.command(...)``) line below.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from interfaces.cli import environments, exits, serve, views
from interfaces.cli.investigate import investigate_app

app = typer.Typer(
    name="aero-auth",
    help="Event-sourced two-factor authentication for Aero.\n\n" + exits.SUMMARY,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords
)


def _show_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"aero-auth {version('aero-auth')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("aero-auth (not installed)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Event-sourced two-factor authentication for Aero."""


app.command("serve")(serve.serve)
app.add_typer(environments.app, name="environments")
app.add_typer(investigate_app, name="investigate")
views.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
