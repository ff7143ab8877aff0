"""``aero-auth investigate``: point-in-time answers from the event store, for auditors.

Every answer is rebuilt from events (application.history, or the projections
fed into copies of the views), never read from a live read model, so it also
serves to check the read models. Nothing is written to the store: ``replay``
writes only its new file, ``verify`` only a temporary directory.

The questions about the past are in investigate_history.py (those about the
identity provider in investigate_identity.py), the copies in investigate_copies.py,
how answers are shown in investigate_render.py, and opening the store in
investigation.py.
"""

from __future__ import annotations

import typer

from interfaces.cli import investigate_copies, investigate_history, investigate_identity

investigate_app = typer.Typer(
    name="investigate",
    help=(
        "Answer point-in-time questions from the event store: what a user's credential, "
        "the 2FA policy and the requirement were at an instant, and what happened when. "
        "Configured like the server (AERO_DATABASE_URL); reads only. Output is a table; "
        "--json prints JSON for scripts. Instants are RFC 3339 (2026-03-03T10:00:00Z or "
        "any offset), shown in UTC. Exit status: 1 when the environment or user did not "
        "exist (yet), 2 for bad input such as a malformed or future instant, 3 when the "
        "settings cannot be used or the store is missing or unreachable. "
        "replay copies every read model as at an instant into a new SQLite file; verify "
        "rebuilds the read models and compares them with the live ones."
    ),
    no_args_is_help=True,
    add_completion=False,
)

investigate_app.command()(investigate_history.timeline)
investigate_app.command()(investigate_history.state)
investigate_app.command()(investigate_history.required)
investigate_app.command()(investigate_history.policy)
investigate_app.command("who-was-required")(investigate_history.who_was_required)
investigate_app.command("identity-provider")(investigate_identity.identity_provider)
investigate_app.command()(investigate_identity.logins)
investigate_app.command()(investigate_copies.replay)
investigate_app.command()(investigate_copies.verify)
