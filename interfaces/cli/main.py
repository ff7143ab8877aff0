"""The ``aero-auth`` command.

Each command group lives in its own module; adding one is an import and
one ``app.add_typer(...)`` (or ``app.command(...)``) line in ``build`` below.

The command tree is built on first use, not at import: each worker that
``serve --workers N`` spawns imports the ``aero-auth`` script, and so this
module, before it answers uvicorn's health check (5 s). Importing every
command pulls in the whole service (the HTTP app, both stores' drivers): 17 s
on a loaded two-core machine, and uvicorn killed those workers as hung.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    app: typer.Typer


def _show_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"aero-auth {version('aero-auth')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("aero-auth (not installed)")
        raise typer.Exit()


def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Event-sourced two-factor authentication for Aero."""


@cache
def build() -> typer.Typer:
    """The command tree, built once."""
    from interfaces.cli import (
        audit,
        environments,
        exits,
        keys,
        serve,
        service_credentials,
        tokens,
        views,
    )
    from interfaces.cli.investigate import investigate_app

    tree = typer.Typer(
        name="aero-auth",
        help="Event-sourced two-factor authentication for Aero.\n\n" + exits.SUMMARY,
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,  # locals may hold passwords
    )
    tree.callback()(_options)
    tree.command("serve")(serve.serve)
    tree.add_typer(environments.app, name="environments")
    tree.add_typer(investigate_app, name="investigate")
    tree.add_typer(tokens.app, name="tokens")
    tree.add_typer(keys.app, name="keys")
    tree.add_typer(service_credentials.app, name="service-credentials")
    tree.add_typer(audit.app, name="audit")
    views.register(tree)
    return tree


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # ``from interfaces.cli.main import app`` builds the tree
        return build()
    raise AttributeError(name)


def main() -> None:
    build()()


if __name__ == "__main__":
    main()
