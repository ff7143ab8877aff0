"""The ``aero-auth`` command.

Each command group lives in its own module; adding one is an import and
one ``app.add_typer(...)`` (or ``app.command(...)``) line below.
"""

from __future__ import annotations

import typer

from interfaces.cli import environments, investigate_identity, serve, views
from interfaces.cli.investigate import investigate_app

app = typer.Typer(
    name="aero-auth",
    help="Event-sourced two-factor authentication for Aero.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold passwords
)
app.command("serve")(serve.serve)
app.add_typer(environments.app, name="environments")
investigate_identity.register(investigate_app)
app.add_typer(investigate_app, name="investigate")
views.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
