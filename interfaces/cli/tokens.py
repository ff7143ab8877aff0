"""``aero-auth tokens``: the keys that sign access tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from interfaces.cli.exits import FINDING, configuration_errors, fail
from interfaces.composition import load_settings

app = typer.Typer(help="Manage the token signing keys.", no_args_is_help=True)


@app.command("rotate-signing-key")
def rotate(
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="rotate even if tokens signed by the previous key may still be valid "
            "(they stop verifying: their users log in again)",
        ),
    ] = False,
) -> None:
    """Make a new signing key; the current one becomes the previous one, which only verifies.

    Tokens signed before stay valid until they expire. Restart the servers
    afterwards: they read the keys when they start.
    """
    # Signing keys bring the token and cookie codecs: loaded by this command alone.
    from interfaces.signing_keys import RotationTooSoonError, rotate_signing_key

    with configuration_errors():
        settings = load_settings()
        try:
            rotation = rotate_signing_key(settings, datetime.now(UTC), force=force)
        except RotationTooSoonError as e:
            fail(str(e), FINDING)
    typer.echo(f"signing key:  {rotation.current_kid} ({rotation.current_path})")
    typer.echo(f"previous key: {rotation.previous_kid} ({rotation.previous_path}, verifies only)")
    typer.echo("restart every aero-auth server process so that it signs with the new key")
